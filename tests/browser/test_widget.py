"""The embeddable feedback widget in Debian's chromium, on a host page served from another origin (another port)
under a strict Content-Security-Policy: a user sends a thumbs down with a category and a sentence, and the event is
stored on the right turn; the same page from an origin the key does not allow is refused and nothing is stored."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from feedbackhub import widget_keys
from sessions.models import Conversation, FeedbackEvent, FeedbackOrigin, Turn
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOST_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Support bot</title>
<link rel="stylesheet" href="/host.css">
<script src="{fh}/widget/v1.js" data-key="{key}" defer></script>
<script src="/host.js" defer></script></head>
<body><main><h1>Support bot</h1>
<article class="reply" id="reply"><p>Our refund window is 30 days from delivery.</p><div id="feedback"></div></article>
</main></body></html>
"""
HOST_JS = """document.addEventListener("DOMContentLoaded", function () {
  FeedbackHub.attach(document.getElementById("feedback"), {conversation: "conv-7", turn: 1});
});
"""
# Host styles that would break a widget rendered in the page's own DOM.
HOST_CSS = "button { display: none !important; } label { font-size: 40px; } * { color: red; }"


class _Handler(http.server.SimpleHTTPRequestHandler):
    csp = ""

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", self.csp)
        super().end_headers()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def host_site(folder: Path, fh_url: str) -> Iterator[str]:
    """Serve ``folder`` on a free port with a strict CSP that allows scripts and requests to FeedbackHub only."""
    handler = type("Handler", (_Handler,), {
        "csp": f"default-src 'self'; script-src 'self' {fh_url}; connect-src {fh_url}; style-src 'self'",
    })
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def conversation(transactional_db) -> Conversation:
    conv = Conversation.objects.create(source="support", external_id="conv-7", content_hash="x", turn_count=2)
    Turn.objects.create(conversation=conv, position=0, role="user", content="How long do I have for a refund?")
    Turn.objects.create(conversation=conv, position=1, role="assistant",
                        content="Our refund window is 30 days from delivery.")
    return conv


def _page_folder(tmp_path: Path, name: str, fh_url: str, key: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "index.html").write_text(HOST_HTML.format(fh=fh_url, key=key))
    (folder / "host.js").write_text(HOST_JS)
    (folder / "host.css").write_text(HOST_CSS)
    (folder / "favicon.ico").write_bytes(b"")
    return folder


def test_thumbs_down_flow_from_another_origin(page: Page, live_server, conversation, tmp_path):
    folder = _page_folder(tmp_path, "allowed", live_server.url, "")
    with host_site(folder, live_server.url) as host:
        key = widget_keys.widget_key_create(name="support web", source="support", origins=[host],
                                            categories=["factually incorrect", "too vague", "wrong tone"])
        (folder / "index.html").write_text(HOST_HTML.format(fh=live_server.url, key=key.key))
        page.goto(f"{host}/index.html")
        # The host's CSS hides every button of the page: the widget's, in its Shadow DOM, still show.
        down = page.get_by_role("button", name="Not helpful")
        expect(down).to_be_visible()
        down.click()
        expect(page.get_by_role("group", name="What was wrong?")).to_be_visible()
        page.get_by_role("checkbox", name="too vague").check()
        page.get_by_label("Tell us more (optional)").fill("It does not say whether weekends count.")
        page.get_by_role("button", name="Suggest a better answer").click()
        page.get_by_label("A better answer").fill("30 calendar days from delivery, weekends included.")
        page.get_by_role("button", name="Send feedback").click()
        expect(page.get_by_role("status")).to_have_text("Thank you for your feedback.")

    event = FeedbackEvent.objects.get()
    assert event.turn.position == 1 and event.conversation.source == "support"
    assert event.kind == "thumbs_down" and event.categories == ["too vague"]
    assert event.text == "It does not say whether weekends count."
    assert event.correction == "30 calendar days from delivery, weekends included."
    assert event.origin == FeedbackOrigin.WIDGET and event.metadata["widget"]["origin"] == host


def test_keyboard_only_and_copy_signal(page: Page, live_server, conversation, tmp_path):
    folder = _page_folder(tmp_path, "keys", live_server.url, "")
    with host_site(folder, live_server.url) as host:
        key = widget_keys.widget_key_create(name="support web", source="support", origins=[host],
                                            categories=["too vague"])
        (folder / "index.html").write_text(HOST_HTML.format(fh=live_server.url, key=key.key))
        page.goto(f"{host}/index.html")
        expect(page.get_by_role("button", name="Helpful", exact=True)).to_be_visible()
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # "Not helpful"
        expect(page.get_by_role("checkbox", name="too vague")).to_be_focused()
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        page.keyboard.type("Vague.")
        page.get_by_role("button", name="Send feedback").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_be_visible()
        # Copying the reply's text is recorded on its own, once.
        page.get_by_text("Our refund window").select_text()
        page.keyboard.press("Control+C")
        page.wait_for_function("() => performance.getEntriesByType('resource')"
                               ".filter(e => e.name.includes('/widget/v1/feedback')).length >= 2")
    page.wait_for_timeout(200)
    kinds = sorted(FeedbackEvent.objects.values_list("kind", flat=True))
    assert kinds == ["copy", "thumbs_down"]


def test_an_origin_the_key_does_not_allow_is_refused(page: Page, live_server, conversation, tmp_path,
                                                     page_problems):
    key = widget_keys.widget_key_create(name="support web", source="support", origins=["https://app.example"])
    folder = _page_folder(tmp_path, "refused", live_server.url, key.key)
    with host_site(folder, live_server.url) as host:
        page.goto(f"{host}/index.html")
        page.get_by_role("button", name="Helpful", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("Could not send your feedback")
        page.get_by_role("button", name="Not helpful").click()
        expect(page.get_by_role("alert")).to_contain_text("may not use the widget key")
    assert not FeedbackEvent.objects.exists()
    # The browser reports the refused cross-origin requests; nothing else went wrong.
    assert page_problems and all("CORS" in p or "net::ERR_FAILED" in p for p in page_problems), page_problems
    page_problems.clear()


def test_admin_live_preview_follows_the_categories(page: Page, live_server, transactional_db):
    User.objects.create_superuser("root", password="pw-for-tests-only")
    key = widget_keys.widget_key_create(name="support web", source="support", origins=["https://app.example"],
                                        categories=["too vague"])
    login(page, live_server.url, "root")
    page.goto(f"{live_server.url}/admin/feedbackhub/widgetkey/{key.pk}/change/")
    expect(page.get_by_label("Snippet for the host page")).to_contain_text(f'data-key="{key.key}"')
    page.get_by_role("button", name="Not helpful").click()
    expect(page.get_by_role("checkbox", name="too vague")).to_be_visible()
    page.get_by_label("Categories").fill("too vague, outdated price")
    page.get_by_role("button", name="Not helpful").click()
    expect(page.get_by_role("checkbox", name="outdated price")).to_be_visible()
    # A preview sends nothing.
    page.get_by_role("button", name="Send feedback").click()
    expect(page.get_by_role("status")).to_have_text("Thank you for your feedback.")
    assert not FeedbackEvent.objects.exists()
