"""The ingest API: POST /api/v1/conversations and /api/v1/feedback (token scope ingest, bound to sources)."""

from __future__ import annotations

import gzip
import json

import pytest
from django.test import Client

from feedbackhub import auth_tokens
from sessions import events
from sessions.models import Conversation, FeedbackEvent, FeedbackOrigin, ImportBatch, Turn

CONVERSATIONS = "/api/v1/conversations"
FEEDBACK = "/api/v1/feedback"


def record(cid: str, *replies: str, **extra) -> dict:
    turns = []
    for i, reply in enumerate(replies or ("Paris.",)):
        turns += [{"role": "user", "content": f"Question {i}?"},
                  {"role": "assistant", "content": reply, "id": f"{cid}-a{i}"}]
    return {"id": cid, "model_version": "m-1", "environment": "prod", "turns": turns, **extra}


@pytest.fixture
def token(db) -> str:
    return auth_tokens.api_token_create(name="support bot", scopes=["ingest"], sources=["support"])[1]


@pytest.fixture
def api():
    return Client(enforce_csrf_checks=True)


def post(api, url, body, token, content_type="application/json", **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return api.post(url, data=data, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def test_a_batch_is_created_then_unchanged_then_updated_in_place(api, token, django_capture_on_commit_callbacks):
    sent: list[int] = []
    events.conversations_imported.connect(lambda sender, batch_id, **_: sent.append(batch_id), weak=False,
                                          dispatch_uid="test-ingest")
    try:
        body = {"conversations": [record("c1"), record("c2", "Yes.", "No.")]}
        first = post(api, CONVERSATIONS, body, token)
        assert first.status_code == 200, first.content
        answer = first.json()
        assert answer["counts"] == {"created": 2}
        assert [r["status"] for r in answer["results"]] == ["created", "created"]
        assert {r["source"] for r in answer["results"]} == {"support"}
        batch = ImportBatch.objects.get(pk=answer["batch"])
        assert batch.conversations_created == 2 and batch.file_name == "API: support bot"
        assert sent == [batch.pk]

        again = post(api, CONVERSATIONS, body, token).json()
        assert again["counts"] == {"unchanged": 2}
        assert Conversation.objects.count() == 2 and Turn.objects.count() == 6

        # A turn appended to a live conversation: the record grows, the conversation is updated in place.
        grown = post(api, CONVERSATIONS, {"conversations": [record("c1", "Paris.", "Lyon.")]}, token).json()
        assert grown["results"][0]["status"] == "updated"
        c1 = Conversation.objects.get(external_id="c1")
        assert grown["results"][0]["pk"] == c1.pk
        assert list(c1.turns.values_list("content", flat=True)) == ["Question 0?", "Paris.", "Question 1?", "Lyon."]
    finally:
        events.conversations_imported.disconnect(dispatch_uid="test-ingest")


def test_ndjson_and_json_forms_of_a_record_are_the_same_content(api, token):
    assert post(api, CONVERSATIONS, {"conversations": [record("n1")]}, token).status_code == 200
    ndjson = json.dumps(record("n1")) + "\n\n"
    answer = post(api, CONVERSATIONS, ndjson, token, content_type="application/x-ndjson").json()
    assert answer["results"][0]["status"] == "unchanged"


def test_gzip_bodies_are_read(api, token):
    body = gzip.compress(json.dumps({"conversations": [record("g1")]}).encode())
    response = post(api, CONVERSATIONS, body, token, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200, response.content
    assert response.json()["counts"] == {"created": 1}


def test_bad_records_are_rejected_with_their_field_and_the_rest_stored(api, token):
    bad = record("b1")
    bad["turns"][1]["role"] = "robot"
    answer = post(api, CONVERSATIONS, {"conversations": [bad, record("ok"), {"turns": []}]}, token).json()
    assert answer["counts"] == {"rejected": 2, "created": 1}
    first, _, third = answer["results"]
    assert first["status"] == "rejected" and first["field"] == "turns[1].role" and "robot" in first["reason"]
    assert third["field"] == "id"
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["ok"]


def test_the_same_conversation_twice_in_one_request_keeps_the_later(api, token):
    answer = post(api, CONVERSATIONS, {"conversations": [record("d", "Old."), record("d", "New.")]}, token).json()
    assert [r["status"] for r in answer["results"]] == ["rejected", "created"]
    assert answer["results"][0]["field"] == "id"
    assert Turn.objects.get(role="assistant").content == "New."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", None),
        ("[]", None),
        ({"conversations": {}}, "conversations"),
        ({"conversations": []}, "conversations"),
        ({"records": []}, "records"),
        ({"conversations": [record("x")], "source": 5}, "source"),
    ],
)
def test_malformed_bodies_are_400_with_the_field(api, token, body, field):
    response = post(api, CONVERSATIONS, body, token)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert not Conversation.objects.exists()


def test_a_bad_ndjson_line_is_400_naming_the_line(api, token):
    response = post(api, CONVERSATIONS, json.dumps(record("x")) + "\n{oops\n", token,
                    content_type="application/x-ndjson")
    assert response.status_code == 400
    assert "line 2" in response.json()["error"]["message"]
    assert not Conversation.objects.exists()


def test_a_source_the_token_is_not_bound_to_is_403_and_nothing_is_stored(api, token):
    response = post(api, CONVERSATIONS, {"conversations": [record("ok"), record("x", source="billing")]}, token)
    assert response.status_code == 403
    assert response.json()["error"]["field"] == "conversations[1].source"
    response = post(api, CONVERSATIONS, {"source": "billing", "conversations": [record("y")]}, token)
    assert response.status_code == 403
    assert not Conversation.objects.exists() and not ImportBatch.objects.exists()


def test_a_token_of_several_sources_needs_records_to_name_theirs(api, db):
    secret = auth_tokens.api_token_create(name="two", scopes=["ingest"], sources=["a", "b"])[1]
    answer = post(api, CONVERSATIONS, {"conversations": [record("1"), record("2", source="b")]}, secret).json()
    assert answer["results"][0]["field"] == "source"
    assert answer["results"][1]["status"] == "created"
    assert post(api, CONVERSATIONS, {"source": "a", "conversations": [record("1")]}, secret).json()["counts"] == {
        "created": 1}


def test_oversize_bodies_are_413(api, token, settings):
    settings.INGEST_MAX_BODY_BYTES = 2000
    response = post(api, CONVERSATIONS, {"conversations": [record("x", "y" * 3000)]}, token)
    assert response.status_code == 413
    bomb = gzip.compress(b'{"conversations": [' + b" " * 100_000 + b"]}")
    assert len(bomb) < 2000
    assert post(api, CONVERSATIONS, bomb, token, HTTP_CONTENT_ENCODING="gzip").status_code == 413
    settings.INGEST_MAX_BODY_BYTES = 10**6
    settings.INGEST_MAX_RECORDS = 2
    response = post(api, CONVERSATIONS, {"conversations": [record("1"), record("2"), record("3")]}, token)
    assert response.status_code == 413
    assert response.json()["error"]["field"] == "conversations"


def test_the_rate_limit_answers_429_with_retry_after(api, token, settings):
    settings.INGEST_RATE_PER_MINUTE = 2
    codes = [post(api, FEEDBACK, {"events": []}, token).status_code for _ in range(3)]
    assert codes == [400, 400, 429]
    refused = post(api, FEEDBACK, {"events": []}, token)
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limited"


def test_tokens_without_the_ingest_scope_are_refused(api, db):
    recall_only = auth_tokens.api_token_create(name="r", scopes=["recall"], sources=["support"])[1]
    assert post(api, CONVERSATIONS, {"conversations": [record("x")]}, recall_only).status_code == 403
    assert api.post(CONVERSATIONS, data="{}", content_type="application/json").status_code == 401


# --- Feedback events ----------------------------------------------------------------------------------------------


@pytest.fixture
def stored(api, token):
    post(api, CONVERSATIONS, {"conversations": [record("c1", "Paris.", "Lyon.")]}, token)
    return Conversation.objects.get(external_id="c1")


def test_a_feedback_event_is_stored_on_its_turn_once(api, token, stored, django_capture_on_commit_callbacks):
    received: list[list[int]] = []
    events.feedback_received.connect(lambda sender, event_ids, **_: received.append(event_ids), weak=False,
                                     dispatch_uid="test-feedback")
    try:
        event = {"conversation": "c1", "turn": 1, "id": "evt-1", "type": "thumbs_down",
                 "categories": ["too vague"], "text": "Which Paris?", "correction": "Paris, France."}
        first = post(api, FEEDBACK, event, token)
        assert first.status_code == 201, first.content
        assert first.json()["status"] == "created"
        again = post(api, FEEDBACK, event, token)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
    finally:
        events.feedback_received.disconnect(dispatch_uid="test-feedback")
    stored_event = FeedbackEvent.objects.get()
    assert stored_event.turn.position == 1 and stored_event.turn.content == "Paris."
    assert stored_event.categories == ["too vague"] and stored_event.origin == FeedbackOrigin.API
    assert stored_event.is_negative and stored_event.received_at is not None
    assert received == [[stored_event.pk]]
    stored.refresh_from_db()
    assert stored.has_negative_feedback and stored.feedback_kinds == ["thumbs_down"]


def test_feedback_by_turn_id_and_in_batches(api, token, stored):
    answer = post(api, FEEDBACK, {"events": [
        {"conversation": "c1", "turn_id": "c1-a1", "id": "e1", "type": "rating", "rating": 5},
        {"conversation": "c1", "turn": 99, "id": "e2", "type": "copy"},
        {"conversation": "nope", "turn": 1, "id": "e3", "type": "copy"},
        {"conversation": "c1", "turn": 1, "id": "e4", "type": "rating", "rating": 9},
    ]}, token).json()
    assert [r["status"] for r in answer["results"]] == ["created", "rejected", "rejected", "rejected"]
    assert [r.get("field") for r in answer["results"]] == [None, "turn", "conversation", "rating"]
    assert FeedbackEvent.objects.get().turn.content == "Lyon."


def test_a_single_event_on_an_unknown_conversation_is_404(api, token, stored):
    response = post(api, FEEDBACK, {"conversation": "ghost", "turn": 0, "type": "thumbs_up"}, token)
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "conversation"
    response = post(api, FEEDBACK, {"conversation": "c1", "type": "thumbs_up"}, token)
    assert response.status_code == 400 and response.json()["error"]["field"] == "turn"


def test_live_feedback_survives_an_update_of_the_conversation(api, token, stored):
    post(api, FEEDBACK, {"conversation": "c1", "turn": 1, "id": "live", "type": "thumbs_down"}, token)
    grown = record("c1", "Paris.", "Lyon.", "Nice.")
    grown["turns"][1]["feedback"] = [{"id": "imported", "type": "thumbs_up"}]
    assert post(api, CONVERSATIONS, {"conversations": [grown]}, token).json()["results"][0]["status"] == "updated"
    assert set(FeedbackEvent.objects.values_list("event_key", "origin")) == {("live", "api"), ("imported", "import")}
    stored.refresh_from_db()
    assert stored.feedback_kinds == ["thumbs_down", "thumbs_up"] and stored.has_negative_feedback


def test_openapi_document_is_served(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/conversations", "/api/v1/feedback", "/v1/traces"} <= set(schema["paths"])


def test_live_feedback_shows_on_a_review_page_rendered_before(api, token, stored, moderator_client):
    url = f"/review/c/{stored.pk}/"
    assert "Which Paris?" not in moderator_client.get(url).content.decode()  # the reply's fragment is now cached
    post(api, FEEDBACK, {"conversation": "c1", "turn": 1, "id": "late", "type": "thumbs_down",
                         "categories": ["too vague"], "text": "Which Paris?"}, token)
    page = moderator_client.get(url).content.decode()
    assert "Which Paris?" in page and "via feedback api" in page
    trail = moderator_client.get(f"/conversations/{stored.pk}/").content.decode()
    assert "Which Paris?" in trail and "via feedback api" in trail
