"""Log texts that look like markup stay inert text in a real browser: no dialog, no script, no request fires.

The ``page`` fixture fails the test on any dialog, console error or CSP violation; these tests also record every
request the page makes and allow only the page itself and its static files.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import login
from tests.factories import make_conversation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(1);window.__pwned=1">'
HTMX = '<div hx-get="/conversations/" hx-trigger="load" hx-swap="outerHTML">htmx bait</div>'
PAYLOAD = f"{SCRIPT} {IMG} {HTMX}"


@pytest.fixture
def evil_conversation():
    return make_conversation(
        source="xss-suite",
        metadata={"note": PAYLOAD, HTMX: {"nested": IMG}},
        turns=[
            ("user", f"Question {PAYLOAD}"),
            {
                "role": "assistant",
                "content": f"Answer\n{PAYLOAD}",
                "system_prompt": PAYLOAD,
                "retrieved_documents": [{"id": SCRIPT, "title": IMG, "text": HTMX, "score": 0.5}],
                "tool_calls": [{"id": "c1", "name": IMG, "arguments": PAYLOAD, "result": {"html": HTMX}}],
            },
        ],
        feedback={1: [{"kind": "comment", "text": PAYLOAD, "categories": [SCRIPT], "correction": IMG}]},
    )


def _record_requests(page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


# The page's own follow-up requests: static files, and the session list's tag chips (loaded for the rows shown).
# The header asks for its inbox count on every page (and then polls it).
OWN_REQUESTS = ("/static/", "/insights/chips/?", "/inbox/count")


def _assert_only_own_requests(seen: list[str], page_url: str, base: str) -> None:
    unexpected = [
        url for url in seen if url != page_url and not any(url.startswith(base + prefix) for prefix in OWN_REQUESTS)
    ]
    assert unexpected == [], f"requests beyond the page's own: {unexpected}"
    assert not any(url.endswith("/x") for url in seen)


def _assert_inert(page, region: str) -> None:
    text = page.locator(region).inner_text()
    for fragment in (SCRIPT, IMG, HTMX):
        assert fragment in text, fragment
    assert page.locator(f"{region} script").count() == 0
    assert page.locator(f'{region} img[src="x"]').count() == 0
    assert page.locator(f"{region} [hx-get], {region} [hx-trigger], {region} [onerror]").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def test_trail_shows_markup_as_inert_text(page, live_server, moderator, evil_conversation):
    login(page, live_server.url, "mod")
    seen = _record_requests(page)
    url = f"{live_server.url}{evil_conversation.get_absolute_url()}"
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Expand all context").click()
    page.locator(".trail-metadata > summary").click()
    page.locator(".fb-meta > summary, .turn-meta > summary").evaluate_all("els => els.forEach(e => e.click())")
    page.wait_for_load_state("networkidle")

    _assert_inert(page, "#trail")
    assert page.locator(".trail-context").first.evaluate("d => d.open")
    # Whitespace is kept: the reply's line break is a line break on screen.
    assert page.locator("#turn-1 .turn-content").inner_text().startswith("Answer\n<script>")
    metadata = page.locator(".trail-metadata").inner_text()
    assert HTMX in metadata and "nested" in metadata
    _assert_only_own_requests(seen, url, live_server.url)


def test_list_shows_markup_as_inert_text_also_after_an_htmx_swap(page, live_server, moderator, evil_conversation):
    make_conversation(source="plain", turns=[("user", "harmless question"), ("assistant", "ok")])
    login(page, live_server.url, "mod")
    seen = _record_requests(page)
    url = f"{live_server.url}/conversations/"
    page.goto(url)
    page.wait_for_load_state("networkidle")
    title = page.locator(f'[data-session-id="{evil_conversation.pk}"] .session-link')
    assert title.inner_text().startswith(f"Question {SCRIPT} {IMG}")
    assert page.locator("#results script, #results img, #results [hx-trigger='load']").count() == 0
    _assert_only_own_requests(seen, url, live_server.url)

    # Content swapped in by htmx is processed by htmx: it must be just as inert.
    seen.clear()
    with page.expect_response(lambda r: "source=xss-suite" in r.url):
        page.select_option("#id_source", "xss-suite")
    page.wait_for_load_state("networkidle")
    assert page.locator("#results [data-session-id]").count() == 1
    assert page.locator("#results script, #results img, #results [hx-trigger='load']").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    swapped = [u for u in seen if not any(u.startswith(live_server.url + prefix) for prefix in OWN_REQUESTS)]
    assert swapped == [f"{live_server.url}/conversations/?source=xss-suite"], swapped
