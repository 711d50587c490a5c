"""The conversation trail: metadata, turns in order with system context, output and feedback; escaping; query count."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.urls import reverse

from tests.sessions.factories import ConversationFactory, FeedbackEventFactory, TurnFactory, refresh_summary

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def rich():
    conv = ConversationFactory(
        title="Refund for annual plan",
        source="billing-bot",
        external_id="sess-42",
        end_user_id="u-9f3a",
        user_role="premium_customer",
        environment="test",
        model_version="gpt-4o-2024-08",
        app_version="prompt-v13",
        started_at=T0,
        ended_at=T0 + dt.timedelta(minutes=2, seconds=5),
        metadata={"locale": "de-DE", "channel": "web", "ab": {"bucket": "B", "flags": ["x", "y"]}},
        turns=[
            {"role": "user", "content": "Can I get a refund\n  for my annual plan?"},
            {
                "role": "assistant",
                "content": "Yes.\n\nWithin 30 days:\n  1. Open Billing\n  2. Click Refund",
                "latency_ms": 1234,
                "prompt_tokens": 812,
                "completion_tokens": 95,
                "model_version": "gpt-4o-2024-08-06",
                "confidence": 0.87,
                "system_prompt": "You are BillingBot.\nBe brief.",
                "retrieved_documents": [
                    {"id": "kb-101", "title": "Refund policy", "score": 0.9123, "text": "Annual plans: 30 days."},
                    {"id": "kb-7", "score": 0.41, "text": "Monthly plans are not refundable.", "url": "https://kb/7"},
                ],
                "tool_calls": [
                    {"id": "call_1", "name": "lookup_subscription", "arguments": '{"user": "u-9f3a"}',
                     "result": {"plan": "annual", "days_since_purchase": 12}},
                ],
            },
            {"role": "user", "content": "thanks"},
        ],
        feedback={
            1: [
                {"kind": "thumbs_down", "created_at": T0 + dt.timedelta(minutes=1)},
                {"kind": "rating", "rating": 2, "created_at": T0 + dt.timedelta(minutes=1, seconds=1)},
                {"kind": "category", "categories": ["incomplete", "too vague"]},
                {"kind": "comment", "text": "It did not say\nhow long it takes."},
                {"kind": "correction", "correction": "Yes, within 30 days; the money arrives in 5 days."},
                {"kind": "regenerate"},
                {"kind": "copy", "metadata": {"chars": 120}},
            ]
        },
    )
    return conv


def section(body: str, start: str, end: str) -> str:
    part = body[body.index(start):]
    return part[: part.index(end)]


def test_trail_shows_metadata_header(moderator_client, rich):
    body = html.unescape(moderator_client.get(rich.get_absolute_url()).content.decode())
    head = section(body, '<header class="trail-head', "</header>")
    for text in ("Refund for annual plan", "billing-bot", "sess-42", "u-9f3a", "premium_customer", "Test",
                 "gpt-4o-2024-08", "prompt-v13", "2026-05-04 10:00:00", "2026-05-04 10:02:05", "(2 min 5 s)",
                 "Negative feedback", "Thumbs down", "Rating", "Free text", "User correction", "Regenerated"):
        assert text in head, text
    assert re.search(r"<dt>Turns</dt><dd>3</dd>", head)
    assert re.search(r"<dt>Feedback events</dt><dd>7</dd>", head)
    # Metadata as an escaped key/value table; nested values as pretty JSON.
    assert '<th scope="row" class="mono">locale</th><td><span class="text">de-DE</span>' in head
    assert '<th scope="row" class="mono">ab</th><td><pre class="code">{\n' in head
    assert '"bucket": "B"' in head and '"flags": [\n    "x",\n    "y"\n  ]' in head


def test_turns_in_order_with_context_output_and_feedback(moderator_client, rich):
    body = html.unescape(moderator_client.get(rich.get_absolute_url()).content.decode())
    positions = re.findall(r'<li class="trail-turn role-(\w+)" id="turn-(\d+)"', body)
    assert positions == [("user", "0"), ("assistant", "1"), ("user", "2")]

    model_turn = section(body, 'id="turn-1"', 'id="turn-2"')
    # user query -> system context -> model output -> feedback
    order = [model_turn.index(marker) for marker in
             ('<details class="trail-context">', 'class="text turn-content"', 'class="trail-feedback"')]
    assert order == sorted(order)
    # Whitespace of texts is kept for CSS pre-wrap.
    assert "Yes.\n\nWithin 30 days:\n  1. Open Billing\n  2. Click Refund</div>" in model_turn
    assert "Can I get a refund\n  for my annual plan?" in body
    # Metrics.
    for text in ("1234 ms", "812 → 95 tokens", "gpt-4o-2024-08-06", "conf. 0.87"):
        assert text in model_turn, text
    # Context: prompt, documents with ids and scores, tool call with arguments and result.
    context = section(model_turn, '<details class="trail-context">', "</details>")
    assert "· prompt" in context and "· 2 documents" in context and "· 1 tool call" in context
    assert "You are BillingBot.\nBe brief." in context
    assert '<code class="doc-id">kb-101</code>' in context and "Refund policy" in context
    assert "score 0.912" in context and "score 0.410" in context
    assert '"url": "https://kb/7"' in context
    assert '<code class="tool-name">lookup_subscription</code>' in context and "call_1" in context
    assert '{\n  "user": "u-9f3a"\n}' in context
    assert '"days_since_purchase": 12' in context
    # Feedback.
    feedback = section(model_turn, 'class="trail-feedback"', "</section>")
    assert "Thumbs down" in feedback and "Rating: 2" in feedback
    assert '<span class="chip">incomplete</span><span class="chip">too vague</span>' in feedback
    assert "It did not say\nhow long it takes.</blockquote>" in feedback
    assert "Yes, within 30 days; the money arrives in 5 days." in feedback
    assert '<span class="implicit">implicit</span> Regenerated' in feedback
    assert '<span class="implicit">implicit</span> Copied' in feedback
    assert '"chars": 120' in feedback
    assert "2026-05-04 10:01:00" in feedback
    assert feedback.count('class="fb-event tone-neg"') == 4  # thumbs down, rating 2, correction, regenerate


def test_a_turn_without_context_has_no_context_block(moderator_client):
    conv = ConversationFactory()
    body = moderator_client.get(conv.get_absolute_url()).content.decode()
    assert "trail-context" not in section(body, '<ol class="trail"', "</ol>")


def test_unknown_session_is_404(moderator_client):
    assert moderator_client.get(reverse("conversations:detail", args=[987654])).status_code == 404


def test_every_text_is_escaped(moderator_client):
    evil = '<script>alert(1)</script><img src=x onerror=alert(1)><b hx-get="/sessions/" hx-trigger="load">x</b>'
    conv = ConversationFactory(
        source="s<i>", end_user_id=evil, user_role=evil[:60], model_version=evil[:120], app_version=evil[:120],
        metadata={evil: evil, "nested": {"k": evil}},
        turns=[
            ("user", evil),
            {"role": "assistant", "content": evil, "system_prompt": evil, "model_version": evil[:120],
             "retrieved_documents": [{"id": evil, "title": evil, "text": evil, "score": 1}],
             "tool_calls": [{"id": evil, "name": evil, "arguments": evil, "result": evil}]},
        ],
        feedback={1: [{"kind": "comment", "text": evil, "categories": [evil[:100]], "correction": evil,
                       "metadata": {"note": evil}}]},
    )
    body = moderator_client.get(conv.get_absolute_url()).content.decode()
    assert "<script>alert" not in body
    assert "<img src=x" not in body
    assert 'hx-trigger="load"' not in body and "<b hx-get" not in body
    assert "<i>" not in body
    assert body.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 12


# the user with their groups (the session comes from Redis); conversation (with its import batch), turns, feedback
# events.
DETAIL_QUERIES = 4


@pytest.mark.parametrize("turn_count", [2, 30])
def test_trail_runs_a_fixed_number_of_queries(client, analyst, django_assert_num_queries, turn_count):
    conv = ConversationFactory(turns=[])
    for i in range(turn_count):
        turn = TurnFactory(
            conversation=conv,
            role=("user", "assistant")[i % 2],
            content=f"turn {i}",
            retrieved_documents=[{"id": f"d{i}", "score": 0.5}] if i % 2 else [],
            tool_calls=[{"name": "search", "arguments": {"q": i}}] if i % 2 else [],
        )
        FeedbackEventFactory(turn=turn, kind="thumbs_down", text=f"bad {i}")
        FeedbackEventFactory(turn=turn, kind="category", categories=["too vague"])
    refresh_summary(conv)
    client.force_login(analyst)
    with django_assert_num_queries(DETAIL_QUERIES):
        response = client.get(conv.get_absolute_url())
    body = response.content.decode()
    assert body.count('class="trail-turn ') == turn_count
    assert body.count('class="fb-event ') == 2 * turn_count
