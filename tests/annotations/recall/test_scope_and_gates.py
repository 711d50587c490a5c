"""The recall API's scope (a token sees only its sources), floor (nothing below RECALL_MIN_SIMILARITY), gates
(approved, four-eyes, a released dataset version) and scrubbing, on really embedded cases."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from annotations import services
from annotations.curation import services as curation
from annotations.models import Correction
from annotations.recall import embedding
from annotations.recall import services as recall_services
from annotations.recall.models import FeedbackItem
from annotations.triage.models import Cluster, ClusterMember
from feedbackhub import auth_tokens, roles
from tests.annotations.recall.recall_cases import REFUND_QUERY, make_case

URL = "/api/v1/recall"
HR_QUERY = "can I carry over unused holiday days?"


def _post(body, token: str):
    return Client().post(URL, data=json.dumps(body), content_type="application/json",
                         headers={"Authorization": f"Bearer {token}"})


def _token(**access) -> str:
    return auth_tokens.api_token_create(name="bot", scopes=["recall"], **access)[1]


@pytest.fixture
def second_expert(db) -> User:
    user = User.objects.create_user(username="expert2", password="pw-for-tests-only")
    user.groups.add(Group.objects.get_or_create(name=roles.DOMAIN_EXPERT)[0])
    return user


def _approved(case, *, author, approver, text: str, rationale: str = "") -> Correction:
    correction = services.correction_save(actor=author, turn=case.turn, text=text, rationale=rationale)
    return services.correction_approve(actor=approver, correction_id=correction.pk, version=correction.version)


def _sync(*cases) -> None:
    for case in cases:
        recall_services.feedback_item_sync_for_annotation(annotation_id=case.annotation.pk)
    embedding.embeddings_embed_pending()


# Banking cases, as the demo's bank-support app has them (feedbackhub/demo/data/bank-support.json).
BANK = [
    ("declined", "My card keeps getting declined in Portugal, I'm standing at the checkout right now. What do I do?",
     "Cards can be declined for many reasons. Please contact your bank for more information.",
     "Your card is fine; contactless abroad is limited to €50 until you enter your PIN once in the country."),
    ("charge", "There's a payment of €42.90 to StreamBox I don't recognise. Is it fraud?",
     "This charge is fraudulent and your card has been blocked.",
     "Never claim a charge is fraud: show the merchant details and offer to dispute it or freeze the card."),
    ("limit", "Is there a daily limit for transfers in the app?",
     "There is no limit on transfers.",
     "The daily transfer limit in the app is €5,000; raise it in Settings > Limits after verification."),
]


def _bank_cases(moderator, author, approver, *, source: str = "bank-support"):
    cases = []
    for key, question, reply, better in BANK:
        case = make_case(moderator=moderator, external_id=f"{source}-{key}", question=question, reply=reply,
                         quote=reply.split(".")[0], comment="Vague and wrong for a bank.", tag="factually-incorrect",
                         source=source)
        _approved(case, author=author, approver=approver, text=better, rationale=f"Policy for {key}.")
        cases.append(case)
    _sync(*cases)
    return cases


@pytest.mark.django_db
def test_an_hr_question_gets_no_banking_example_above_the_default_floor(moderator, expert, second_expert, settings):
    settings.RECALL_MIN_SIMILARITY = 0.35  # the documented default, pinned against a changed environment
    _bank_cases(moderator, expert, second_expert)
    token = _token(all_sources=True)

    body = _post({"input": HR_QUERY, "k": 5}, token).json()
    assert body["min_similarity"] == 0.35
    assert body["examples"] == [] and body["guidance"] == []  # an empty answer is a valid answer

    # The same cases do come back without the floor, far below it (the test could fail), ...
    low = _post({"input": HR_QUERY, "k": 5, "min_similarity": 0}, token).json()
    assert low["examples"] and max(e["similarity"] for e in low["examples"]) < 0.35
    # ... and a banking question gets its case above the floor.
    bank = _post({"input": "Why was my debit card declined at a shop in Italy?", "k": 1}, token).json()
    assert bank["examples"] and bank["examples"][0]["similarity"] >= 0.35


@pytest.mark.django_db
def test_a_token_never_sees_another_sources_cases_or_guidance(moderator, expert, second_expert):
    bank = _bank_cases(moderator, expert, second_expert, source="bank-support")
    shop = make_case(moderator=moderator, external_id="shop-refund", source="shop-returns",
                     question="Can I get a refund on my annual plan after 45 days?",
                     reply="Yes, annual plans can be refunded within 90 days.", quote="within 90 days",
                     comment="Refunds: 30 days only.", tag="factually-incorrect")
    _approved(shop, author=expert, approver=second_expert, text="Within 30 days only.", rationale="Shop policy S-1.")
    _sync(shop)
    unit = [1.0] + [0.0] * 383
    cluster = Cluster.objects.create(title="Refund window", guidance="Shop only: quote the 30-day window.",
                                     centroid=unit, vector_sum=unit)
    ClusterMember.objects.create(cluster=cluster, item=FeedbackItem.objects.get(annotation=shop.annotation),
                                 distance=0.1, item_at=timezone.now())

    bank_token = _token(sources=["bank-support"])
    body = _post({"input": REFUND_QUERY, "k": 5, "min_similarity": 0}, bank_token).json()
    bank_turns = {c.turn.pk for c in bank}
    assert body["examples"] and {e["turn_id"] for e in body["examples"]} <= bank_turns
    assert {g["turn_id"] for g in body["guidance"]} <= bank_turns
    assert not any("Shop" in g["text"] or "30 days" in g["text"] for g in body["guidance"])
    # Asking for the other source is refused, naming the field.
    refused = _post({"input": REFUND_QUERY, "filters": {"source": "shop-returns"}}, bank_token)
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "filters.source"

    # The shop's own token, and a token with the all-sources grant, do see the case and its cluster's guidance.
    for token in (_token(sources=["shop-returns"]), _token(all_sources=True)):
        seen = _post({"input": REFUND_QUERY, "k": 1}, token).json()
        assert [e["turn_id"] for e in seen["examples"]] == [shop.turn.pk]
        assert "Shop only: quote the 30-day window." in [g["text"] for g in seen["guidance"]]
    # The filter narrows within the grant.
    narrowed = _post({"input": REFUND_QUERY, "min_similarity": 0, "filters": {"source": ["bank-support"]}},
                     _token(all_sources=True)).json()
    assert {e["turn_id"] for e in narrowed["examples"]} <= bank_turns


@pytest.mark.django_db
def test_private_data_in_a_correction_comes_back_scrubbed(moderator, expert, second_expert):
    case = make_case(moderator=moderator, external_id="pii", source="bank-support",
                     question="Can you send my statement to jane.doe@example.com? My card is 4111 1111 1111 1111.",
                     reply="Sure, done.", quote="Sure", comment="Never confirm without checks.",
                     tag="factually-incorrect")
    _approved(case, author=expert, approver=second_expert,
              text="I can't send statements by e-mail. Call us on +1 415-555-2671 or write to help@northwind.example;"
                   " never share card 4111 1111 1111 1111 here.",
              rationale="Send nothing to jane.doe@example.com.")
    _sync(case)
    body = _post({"input": "Please e-mail my statement to me", "k": 1, "min_similarity": 0},
                 _token(sources=["bank-support"])).json()
    [example] = body["examples"]
    assert example["output"] == ("I can't send statements by e-mail. Call us on [PHONE] or write to [EMAIL]; never"
                                 " share card [CARD] here.")
    assert example["input"] == "Can you send my statement to [EMAIL]? My card is [CARD]."
    everything = json.dumps(body)
    for secret in ("jane.doe@example.com", "help@northwind.example", "4111 1111 1111 1111", "415-555-2671"):
        assert secret not in everything
    assert body["scrubbed"] == {"CARD": 2, "EMAIL": 3, "PHONE": 1}


@pytest.fixture
def gated(moderator, expert, second_expert):
    """Three refund-like cases: one approved by a second expert, one approved by its own author (a row from before
    the four-eyes rule), one approved by the person who last edited it."""
    def case(key: str, question: str):
        return make_case(moderator=moderator, external_id=key, source="shop-returns", question=question,
                         reply="Refunds are possible within 90 days.", quote="within 90 days",
                         comment="Refund window is 30 days.", tag="factually-incorrect")

    second = case("second", "Can I get a refund on my annual plan after 45 days?")
    own = case("own", "Is a refund possible for the yearly subscription after six weeks?")
    edited = case("edited", "I bought the plan 40 days ago, money back?")
    _approved(second, author=expert, approver=second_expert, text="Second: 30 days.")
    own_correction = _approved(own, author=expert, approver=second_expert, text="Own: 30 days.")
    Correction.objects.filter(pk=own_correction.pk).update(approved_by=expert)
    edited_correction = _approved(edited, author=expert, approver=second_expert, text="Edited: 30 days.")
    Correction.objects.filter(pk=edited_correction.pk).update(updated_by=second_expert)
    _sync(second, own, edited)
    return second, own, edited


def _turns(token: str) -> set[int]:
    body = _post({"input": REFUND_QUERY, "k": 10, "min_similarity": 0}, token).json()
    return {e["turn_id"] for e in body["examples"]}


@pytest.mark.django_db
def test_the_gate_chooses_approved_or_four_eyes_corrections(gated):
    second, own, edited = gated
    assert _turns(_token(sources=["shop-returns"], gate="approved")) == {second.turn.pk, own.turn.pk, edited.turn.pk}
    four_eyes = _token(sources=["shop-returns"])  # the default gate
    assert _turns(four_eyes) == {second.turn.pk}
    assert _post({"input": REFUND_QUERY}, four_eyes).json()["gate"] == "four_eyes"


@pytest.mark.django_db
def test_the_dataset_gate_returns_the_frozen_rows_of_the_latest_or_a_pinned_version(gated, expert, second_expert):
    second, own, edited = gated
    dataset = curation.dataset_create(actor=expert, name="refunds")

    def release(*cases):
        corrections = [Correction.objects.get(turn=c.turn).pk for c in cases]
        curation.examples_add(actor=expert, dataset=dataset, correction_ids=corrections)
        for example in dataset.examples.filter(status="proposed"):
            curation.example_review(actor=second_expert, example_id=example.pk, decision="approve")
        return curation.version_cut(actor=expert, dataset=dataset)

    release(own)
    # Changed after version 1 was cut: the version keeps the text it froze.
    Correction.objects.filter(turn=own.turn).update(text="Own: changed after the cut.")
    release(second)

    latest = _token(sources=["shop-returns"], gate="dataset", gate_dataset="refunds")
    assert _turns(latest) == {own.turn.pk, second.turn.pk}
    pinned = _token(sources=["shop-returns"], gate="dataset", gate_dataset="refunds", gate_dataset_version=1)
    assert _turns(pinned) == {own.turn.pk}
    body = _post({"input": REFUND_QUERY, "min_similarity": 0}, pinned).json()
    assert body["gate"] == "dataset:refunds@1"
    assert [e["output"] for e in body["examples"]] == ["Own: 30 days."]
    assert _post({"input": REFUND_QUERY}, latest).json()["gate"] == "dataset:refunds@2"
    # An unknown dataset returns nothing rather than ungated corrections.
    missing = _token(sources=["shop-returns"], gate="dataset", gate_dataset="nope")
    assert _post({"input": REFUND_QUERY, "min_similarity": 0}, missing).json()["examples"] == []
