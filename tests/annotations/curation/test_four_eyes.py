"""Four-eyes review: the author of a correction (who created it or last changed it) cannot be its only approver, of
the correction itself or of a dataset example made from it."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from annotations import services as review
from annotations.curation import services
from annotations.curation.models import Example, ExampleStatus
from annotations.models import CorrectionStatus
from tests.annotations.curation.conftest import approve, make_reply

pytestmark = pytest.mark.django_db


def test_the_author_cannot_approve_their_own_correction(expert, second_expert):
    turn = make_reply()
    draft = review.correction_save(actor=expert, turn=turn, text="Paris.")
    with pytest.raises(PermissionDenied, match="another domain expert must approve"):
        review.correction_approve(actor=expert, correction_id=draft.pk, version=draft.version)
    draft.refresh_from_db()
    assert draft.status == CorrectionStatus.DRAFT and draft.approved_by is None
    approved = review.correction_approve(actor=second_expert, correction_id=draft.pk, version=draft.version)
    assert approved.status == CorrectionStatus.APPROVED and approved.approved_by == second_expert


def test_the_last_editor_counts_as_an_author(expert, second_expert):
    draft = review.correction_save(actor=expert, turn=make_reply(), text="Paris.")
    edited = review.correction_save(actor=second_expert, turn=draft.turn, text="Paris, France.",
                                    version=draft.version)
    for author in (expert, second_expert):
        with pytest.raises(PermissionDenied):
            review.correction_approve(actor=author, correction_id=edited.pk, version=edited.version)


def test_four_eyes_can_be_switched_off(expert, settings):
    settings.REVIEW_FOUR_EYES = False
    draft = review.correction_save(actor=expert, turn=make_reply(), text="Paris.")
    assert review.correction_approve(actor=expert, correction_id=draft.pk, version=draft.version).status == "approved"


def test_the_correction_author_cannot_approve_its_example(dataset, expert, second_expert):
    correction = approve(make_reply(), second_expert, author=expert)  # written by expert, approved by another
    services.examples_add(actor=expert, dataset=dataset, correction_ids=[correction.pk])
    example = Example.objects.get(dataset=dataset)
    with pytest.raises(PermissionDenied, match="another domain expert"):
        services.example_review(actor=expert, example_id=example.pk, decision="approve")
    assert Example.objects.get(pk=example.pk).status == ExampleStatus.PROPOSED
    # Notes and a rejection are not an approval.
    services.example_review(actor=expert, example_id=example.pk, decision="reject", notes="too terse")
    approved = services.example_review(actor=second_expert, example_id=example.pk, decision="approve")
    assert approved.status == ExampleStatus.APPROVED and approved.reviewed_by == second_expert


def test_the_review_page_says_why_the_author_cannot_approve(client, expert, second_expert):
    turn = make_reply()
    draft = review.correction_save(actor=expert, turn=turn, text="Paris.")
    url = reverse("annotations:review", args=[turn.conversation_id])
    client.force_login(second_expert)
    other = client.get(url).content.decode()  # renders (and caches) the turn for a second expert first
    assert "Approve correction</button>" in other and "four-eyes review" not in other
    client.force_login(expert)
    page = client.get(url).content.decode()
    assert f'disabled aria-describedby="four-eyes-{draft.pk}"' in page
    assert "You wrote this corrected reply: another domain expert must approve it" in page
    refused = client.post(reverse("annotations:correction_approve", args=[draft.pk]), {"version": draft.version},
                          headers={"HX-Request": "true"})
    assert refused.status_code == 403 and "another domain expert must approve" in refused.content.decode()


def test_the_example_card_disables_approve_for_the_author(client, dataset, expert, second_expert):
    correction = approve(make_reply(), second_expert, author=expert)
    services.examples_add(actor=expert, dataset=dataset, correction_ids=[correction.pk])
    example = Example.objects.get(dataset=dataset)
    client.force_login(expert)
    page = client.get(dataset.get_absolute_url()).content.decode()
    assert f'aria-describedby="four-eyes-example-{example.pk}"' in page
    response = client.post(reverse("curation:example_review", args=[example.pk]), {"decision": "approve"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 403 and "another domain expert must approve" in response.content.decode()
    client.force_login(second_expert)
    page = client.get(dataset.get_absolute_url()).content.decode()
    assert "four-eyes-example" not in page
