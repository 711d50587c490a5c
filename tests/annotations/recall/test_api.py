"""POST /api/v1/recall: token auth (401/403), validation (400 naming the field), and ranked few-shot examples from
really embedded past cases."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotations.models import Tag
from annotations.recall import embedding
from feedbackhub import auth_tokens
from feedbackhub.models import ApiToken
from tests.annotations.recall.recall_cases import REFUND_QUERY, build_cases

URL = "/api/v1/recall"


@pytest.fixture
def token(db) -> str:
    return auth_tokens.api_token_create(name="support bot", scopes=["recall"], sources=["recall-tests"],
                                       gate="approved")[1]


@pytest.fixture
def api():
    # CSRF is enforced as in production: token requests carry no cookie and need no CSRF token.
    return Client(enforce_csrf_checks=True)


def _post(api, body, token: str | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return api.post(URL, data=data, content_type="application/json", **headers, **extra)


@pytest.mark.django_db
def test_no_token_is_401(api):
    response = _post(api, {"input": "hello"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "missing_token"


@pytest.mark.django_db
def test_unknown_and_revoked_tokens_are_401(api, token):
    assert _post(api, {"input": "hello"}, "fh_made-up").status_code == 401
    auth_tokens.api_token_revoke(token_id=ApiToken.objects.get().pk)
    response = _post(api, {"input": "hello"}, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


@pytest.mark.django_db
def test_wrong_scope_is_403(api):
    row, secret = auth_tokens.api_token_create(name="exports", scopes=["recall"], all_sources=True)
    ApiToken.objects.filter(pk=row.pk).update(scopes=["exports"])
    response = _post(api, {"input": "hello"}, secret)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.django_db
def test_a_logged_in_session_is_not_enough(api, moderator):
    api.force_login(moderator)
    assert _post(api, {"input": "hello"}).status_code == 401


@pytest.mark.django_db
def test_get_is_not_allowed(api, token):
    response = api.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        ({}, "input", "required"),
        ({"input": "   "}, "input", "empty"),
        ({"input": 42}, "input", "string"),
        ({"input": "x" * 8001}, "input", "8000"),
        ({"input": "refund", "k": 0}, "k", "1 to 20"),
        ({"input": "refund", "k": 21}, "k", "1 to 20"),
        ({"input": "refund", "k": "5"}, "k", "whole number"),
        ({"input": "refund", "k": True}, "k", "whole number"),
        ({"input": "refund", "k": "¹"}, "k", "whole number"),
        ({"input": "refund", "k": None}, "k", "whole number"),
        ({"input": None}, "input", "string"),
        ({"input": "refund", "filters": {"tags": [3]}}, "filters.tags[0]", "string"),
        ({"input": "refund", "filters": {"until": "2026-13-01"}}, "filters.until", "ISO 8601"),
        ({"input": "refund", "limit": 3}, "limit", "unknown field"),
        ({"input": "refund", "filters": []}, "filters", "object"),
        ({"input": "refund", "filters": {"env": "prod"}}, "filters.env", "unknown filter"),
        ({"input": "refund", "filters": {"environment": 3}}, "filters.environment", "string"),
        ({"input": "refund", "filters": {"tags": "unsafe"}}, "filters.tags", "list"),
        ({"input": "refund", "filters": {"tags": ["unsafe", "no-such-tag"]}}, "filters.tags[1]", "no-such-tag"),
        ({"input": "refund", "filters": {"since": "last week"}}, "filters.since", "ISO 8601"),
        ({"input": "refund", "filters": {"since": "2026-02-01", "until": "2026-01-01"}}, "filters.until", "before"),
        # Values that broke a request further down (the database driver, the encoder, date arithmetic).
        ({"input": "refund", "filters": {"environment": "prod\x00"}}, "filters.environment", "NUL"),
        ({"input": "refund", "filters": {"model_version": "\x00"}}, "filters.model_version", "NUL"),
        ('{"input": "refund \\ud800 now"}', "input", "surrogate"),
        ('{"input": "refund", "filters": {"environment": "\\udfff"}}', "filters.environment", "surrogate"),
        ({"input": "refund", "filters": {"until": "9999-12-31"}}, "filters.until", "out of range"),
        ({"input": "refund", "filters": {"until": "0001-01-01"}}, "filters.until", "out of range"),
        ({"input": "refund", "filters": {"since": "0001-01-01T00:00:00+23:59"}}, "filters.since", "out of range"),
        ({"input": "refund", "filters": {"since": "9999-12-31T23:59:59-23:59"}}, "filters.since", "out of range"),
        ({"input": "refund", "filters": {"since": "2026-01-01T00:00:00+99:00"}}, "filters.since", "ISO 8601"),
        ('{"input": "refund", "filters": ' + "[" * 3000 + "]" * 3000 + "}", None, "nested too deeply"),
        ({"input": "refund", "min_similarity": 1.5}, "min_similarity", "0 to 1"),
        ({"input": "refund", "min_similarity": "0.3"}, "min_similarity", "0 to 1"),
        ({"input": "refund", "filters": {"source": ["ok", 3]}}, "filters.source[1]", "string"),
    ],
)
def test_bad_body_is_400_naming_the_field(api, token, body, field, words):
    response = _post(api, body, token)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    assert words in error["message"]
    if field:
        assert error["message"].startswith(field)


@pytest.mark.django_db
def test_an_oversize_body_is_413_json(api, token, settings):
    body = json.dumps({"input": "refund", "filters": {"environment": "x" * (11 * 1024 * 1024)}})
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = _post(api, body, token)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "body_too_large"


@pytest.fixture
def cases(moderator, expert):
    return build_cases(moderator, expert)


@pytest.mark.django_db
def test_examples_are_ranked_and_shaped_as_documented(api, token, cases):
    response = _post(api, {"input": REFUND_QUERY, "k": 3}, token)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"model", "gate", "min_similarity", "examples", "guidance", "scrubbed"}
    assert body["model"] == "all-MiniLM-L6-v2"
    assert (body["gate"], body["min_similarity"], body["scrubbed"]) == ("approved", 0.35, {})
    examples = body["examples"]
    # Only resolved cases with an approved correction are examples: refund and refund_dev; password is one too, but
    # below the default similarity floor for a refund question.
    assert [e["turn_id"] for e in examples] == [cases.refund.turn.pk, cases.refund_dev.turn.pk]
    unfloored = _post(api, {"input": REFUND_QUERY, "k": 3, "min_similarity": 0}, token).json()["examples"]
    assert [e["turn_id"] for e in unfloored] == [cases.refund.turn.pk, cases.refund_dev.turn.pk, cases.password.turn.pk]
    assert unfloored[2]["similarity"] < 0.35
    similarities = [e["similarity"] for e in examples]
    assert similarities == sorted(similarities, reverse=True)
    assert all(0 < s <= 1 for s in similarities)
    first = examples[0]
    assert set(first) == {"input", "output", "similarity", "conversation_id", "turn_id", "tags", "url"}
    assert first["input"] == "Can I get a refund on my annual plan after 45 days?"
    assert first["output"].startswith("Annual plans can be refunded within 30 days of purchase.")
    assert first["conversation_id"] == cases.refund.conversation.pk
    assert first["tags"] == ["factually incorrect"]
    assert first["url"] == (
        f"http://testserver/review/c/{cases.refund.conversation.pk}/#card-{cases.refund.annotation.pk}"
    )
    guidance = body["guidance"]
    assert {"kind": "correction_rationale", "text": "Refund policy R-12: 30 days."}.items() <= guidance[0].items()
    texts = [g["text"] for g in guidance]
    assert "Wrong refund window: annual plans are refundable within 30 days only." in texts
    # The open tone complaint is never offered: not resolved.
    assert cases.tone.turn.pk not in {g["turn_id"] for g in guidance}


@pytest.mark.django_db
def test_k_limits_the_examples(api, token, cases):
    body = _post(api, {"input": REFUND_QUERY, "k": 1}, token).json()
    assert [e["turn_id"] for e in body["examples"]] == [cases.refund.turn.pk]


@pytest.mark.django_db
def test_filters_narrow_the_examples(api, token, cases):
    dev = _post(api, {"input": REFUND_QUERY, "filters": {"environment": "dev"}}, token).json()
    assert [e["turn_id"] for e in dev["examples"]] == [cases.refund_dev.turn.pk]
    by_tag = _post(api, {"input": REFUND_QUERY, "filters": {"tags": ["Wrong tone"]}}, token).json()
    assert by_tag["examples"] == []
    by_role = _post(api, {"input": REFUND_QUERY, "filters": {"user_role": "customer", "model_version": "gpt-test-1",
                                                             "since": "2000-01-01", "until": "2999-12-31"}}, token)
    assert by_role.status_code == 200
    assert by_role.json()["examples"][0]["turn_id"] == cases.refund.turn.pk
    future = _post(api, {"input": REFUND_QUERY, "filters": {"since": "2999-01-01"}}, token).json()
    assert future["examples"] == []


@pytest.mark.django_db
def test_user_text_comes_back_as_data(api, token, moderator, expert):
    cases = build_cases(moderator, expert, embed=False)
    cases.refund.turn.conversation.turns.filter(position=0).update(content='<script>alert("x")</script> refund?')

    embedding.embeddings_embed_pending()
    response = _post(api, {"input": REFUND_QUERY, "k": 1}, token)
    assert response["Content-Type"] == "application/json"
    assert response.json()["examples"][0]["input"] == '<script>alert("x")</script> refund?'


@pytest.mark.django_db
def test_query_count_does_not_grow_with_k(api, token, cases):

    _post(api, {"input": REFUND_QUERY, "k": 1}, token)  # records the token's use (one write a minute at most)
    counts = []
    for k in (1, 20):
        with CaptureQueriesContext(connection) as captured:
            assert _post(api, {"input": REFUND_QUERY, "k": k}, token).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
    # The token and the model name come from the process's short-lived caches; the search is one query with every
    # row it shows (inside a savepoint with its settings), then the triage clusters' guidance notes.
    assert counts[0] <= 5


@pytest.mark.django_db
def test_tag_filters_follow_the_taxonomy_without_a_query(api, token, cases):


    body = {"input": REFUND_QUERY, "filters": {"tags": ["Outdated pricing"]}}
    assert _post(api, body, token).json()["error"]["field"] == "filters.tags[0]"
    Tag.objects.create(name="Outdated pricing", slug="outdated-pricing", colour="#aa3300")  # forgets the cached one
    assert _post(api, body, token).status_code == 200
    with CaptureQueriesContext(connection) as plain:
        _post(api, {"input": REFUND_QUERY}, token)
    with CaptureQueriesContext(connection) as tagged:
        assert _post(api, {"input": REFUND_QUERY, "filters": {"tags": ["outdated-pricing"]}}, token).status_code == 200
    # The tag names are resolved from the cached taxonomy: the filtered request runs the same queries.
    assert len(tagged.captured_queries) == len(plain.captured_queries)
