"""Browsing in a real browser: filter the list (htmx swap, URL pushed), page through it, open a trail,
expand its system context."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.browser.conftest import login
from tests.factories import BASE_TIME, make_conversation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _row_ids(page) -> list[int]:
    return [int(pk) for pk in page.locator("#results [data-session-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.sessionId)"
    )]


@pytest.fixture
def sessions():
    """55 prod sessions about passwords, 5 dev sessions about refunds (the newest)."""
    prod = [make_conversation(environment="prod") for _ in range(55)]
    dev = [
        make_conversation(environment="dev", turns=[("user", f"Refund request {i}"), ("assistant", "Sure.")])
        for i in range(5)
    ]
    return {"prod": prod, "dev": dev}


def test_filter_swaps_results_with_htmx_and_pushes_the_url(page, live_server, analyst, sessions):
    login(page, live_server.url, "analyst")
    assert page.url == f"{live_server.url}/conversations/"
    assert len(_row_ids(page)) == 50
    # A marker on the window survives an htmx swap but not a page load.
    page.evaluate("() => { window.__samePage = true; }")
    htmx_headers = []
    page.on("request",
            lambda r: htmx_headers.append(r.headers.get("hx-request")) if "/conversations/?" in r.url else None)

    page.select_option("#id_environment", "dev")
    page.wait_for_url(re.compile(r"/conversations/\?environment=dev$"))
    page.wait_for_function("() => document.querySelectorAll('#results [data-session-id]').length === 5")
    assert _row_ids(page) == [c.pk for c in reversed(sessions["dev"])]
    assert page.evaluate("() => window.__samePage") is True
    assert htmx_headers == ["true"]

    # Typed search narrows further; the form's empty fields stay out of the URL.
    page.get_by_label("Search").fill("request 3")
    page.get_by_label("Search").press("Enter")
    page.wait_for_url(re.compile(r"/conversations/\?q=request(\+|%20)3&environment=dev$"))
    page.wait_for_function("() => document.querySelectorAll('#results [data-session-id]').length === 1")
    assert _row_ids(page) == [sessions["dev"][3].pk]
    assert page.evaluate("() => window.__samePage") is True

    # Reloading the pushed URL gives the same page, rendered whole, with the form filled in.
    page.reload()
    assert _row_ids(page) == [sessions["dev"][3].pk]
    assert page.locator("#id_environment").input_value() == "dev"
    assert page.get_by_label("Search").input_value() == "request 3"


def test_pages_forwards_backwards_and_through_history(page, live_server, moderator, sessions):
    newest_first = [c.pk for c in reversed(sessions["prod"] + sessions["dev"])]
    login(page, live_server.url, "mod")
    assert _row_ids(page) == newest_first[:50]
    assert page.locator(".pager-info").inner_text() == "50 conversations shown of many"

    page.get_by_role("link", name="Older ›").click()
    page.wait_for_url(re.compile(r"/conversations/\?after=\d+-\d+$"))
    page.wait_for_function("() => document.querySelectorAll('#results [data-session-id]').length === 10")
    assert _row_ids(page) == newest_first[50:]
    assert page.get_by_role("link", name="Older ›").count() == 0

    page.get_by_role("link", name="‹ Newer").click()
    page.wait_for_url(re.compile(r"/conversations/\?before=\d+-\d+$"))
    page.wait_for_function("() => document.querySelectorAll('#results [data-session-id]').length === 50")
    assert _row_ids(page) == newest_first[:50]

    # The browser's back button restores the older page (htmx asks the server for the whole page).
    page.go_back()
    page.wait_for_url(re.compile(r"/conversations/\?after=\d+-\d+$"))
    page.wait_for_function("() => document.querySelectorAll('#results [data-session-id]').length === 10")
    assert _row_ids(page) == newest_first[50:]


def test_open_a_trail_and_expand_its_context(page, live_server, expert):
    conv = make_conversation(
        title="Card declined abroad",
        started_at=BASE_TIME - dt.timedelta(days=1),
        turns=[
            ("user", "My card was declined in Canada"),
            {
                "role": "assistant",
                "content": "Contactless abroad is capped.\nInsert the card and use your PIN.",
                "system_prompt": "You are BankBot. Quote fees exactly.",
                "retrieved_documents": [{"id": "kb-cards-087", "title": "Declined payments", "score": 0.87,
                                         "text": "Common reasons: ..."}],
                "tool_calls": [{"id": "call_1", "name": "get_card_status", "arguments": {"last4": "7781"},
                                "result": {"status": "active"}}],
                "latency_ms": 2528,
            },
            {"role": "user", "content": "And next time?"},
            {"role": "assistant", "content": "Add the trip in the app.", "system_prompt": "You are BankBot."},
        ],
        feedback={1: [{"kind": "thumbs_down", "text": "Too slow to say what to do"},
                      {"kind": "category", "categories": ["incomplete"]}]},
    )
    login(page, live_server.url, "expert")
    page.get_by_role("link", name="Card declined abroad").click()
    page.wait_for_url(f"{live_server.url}{conv.get_absolute_url()}")
    assert page.get_by_role("heading", level=1).inner_text() == "Card declined abroad"

    turn = page.locator("#turn-1")
    context = turn.locator("details.trail-context")
    prompt = context.get_by_text("You are BankBot. Quote fees exactly.")
    assert not prompt.is_visible()
    context.locator("summary").click()
    assert prompt.is_visible()
    assert context.locator(".doc-id").inner_text() == "kb-cards-087"
    assert "score 0.870" in context.inner_text()
    assert context.locator(".tool-name").inner_text() == "get_card_status"
    assert '"last4": "7781"' in context.inner_text()
    # The reply's line break is kept on screen; feedback follows the reply.
    reply = turn.locator(".turn-content").inner_text()
    assert reply == "Contactless abroad is capped.\nInsert the card and use your PIN."
    feedback = turn.locator(".trail-feedback")
    assert "Thumbs down" in feedback.inner_text() and "Too slow to say what to do" in feedback.inner_text()
    assert feedback.locator(".chip").inner_text() == "incomplete"

    # "Expand all" opens the other turn's context too, and then collapses everything.
    toggle = page.locator("[data-toggle-details]")
    assert toggle.inner_text() == "Expand all context"
    toggle.click()
    assert page.locator("details.trail-context[open]").count() == 2
    assert toggle.inner_text() == "Collapse all context"
    toggle.click()
    assert page.locator("details.trail-context[open]").count() == 0

    page.get_by_role("link", name="Conversations").first.click()
    page.wait_for_url(f"{live_server.url}/conversations/")
