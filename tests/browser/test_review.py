"""The review workspace in Debian's chromium: select -> comment/tag/suggest, highlights and cards, threads,
suggestions into corrections, keyboard-only use, conflicts between two reviewers, emoji anchoring, XSS."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from annotations.models import Annotation, AnnotationStatus, Correction, Tag
from sessions.models import TurnRole
from tests.annotations.conftest import make_conversation
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPLY = "The Eiffel Tower is in Berlin. It was completed in 1889 and is 330 metres tall."
FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
THUMBS = "\U0001f44d\U0001f3fd"


def open_review(page: Page, live_server, conversation, username: str) -> None:
    login(page, live_server.url, username)
    page.goto(f"{live_server.url}/review/c/{conversation.pk}/")
    page.wait_for_selector("#review[data-ready='1']")


def assistant_turns(conversation):
    return list(conversation.turns.filter(role=TurnRole.ASSISTANT).order_by("position"))


def drag_select(page: Page, turn_id: int, quote: str, occurrence: int = 0) -> None:
    """Select ``quote`` in a reply with the mouse, from the left half of its first character to the right half of
    its last one (where chromium puts the selection's ends)."""
    box = page.evaluate(
        """([turnId, quote, occurrence]) => {
            const el = document.querySelector(`#turn-${turnId} [data-reply-text]`);
            const text = el.textContent;
            let at = -1;
            for (let i = 0; i <= occurrence; i++) at = text.indexOf(quote, at + 1);
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            const pos = (offset) => {
                let node, seen = 0;
                while ((node = walker.nextNode())) {
                    if (offset < seen + node.data.length) return [node, offset - seen];
                    seen += node.data.length;
                }
            };
            const [n1, o1] = pos(at);
            walker.currentNode = el;
            const last = at + quote.length - 1;
            const [n2, o2] = pos(last);
            const r1 = document.createRange(); r1.setStart(n1, o1); r1.setEnd(n1, o1 + 1);
            const r2 = document.createRange(); r2.setStart(n2, o2);
            r2.setEnd(n2, Math.min(n2.data.length, o2 + 1));
            const a = r1.getClientRects()[0], b = [...r2.getClientRects()].pop();
            return {x1: a.left + 1, y1: a.top + a.height / 2, x2: b.right - 1, y2: b.top + b.height / 2};
        }""",
        [turn_id, quote, occurrence],
    )
    page.mouse.move(box["x1"], box["y1"])
    page.mouse.down()
    page.mouse.move((box["x1"] + box["x2"]) / 2, box["y2"], steps=4)
    page.mouse.move(box["x2"], box["y2"], steps=4)
    page.mouse.up()


def select_range(page: Page, turn_id: int, quote: str) -> None:
    """Select ``quote`` programmatically (a DOM Range), for selections a mouse cannot place exactly."""
    page.evaluate(
        """([turnId, quote]) => {
            const el = document.querySelector(`#turn-${turnId} [data-reply-text]`);
            const text = el.textContent, at = text.indexOf(quote);
            const node = el.firstChild;
            const range = document.createRange();
            range.setStart(node, at); range.setEnd(node, at + quote.length);
            const sel = document.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        }""",
        [turn_id, quote],
    )


def highlighted_text(page: Page, annotation_id: int) -> str:
    return page.evaluate(
        "(id) => [...document.querySelectorAll(`mark[data-annotation-id='${id}']`)].map(m => m.textContent).join('')",
        annotation_id,
    )


@pytest.fixture
def conversation(db):
    return make_conversation(replies=[REPLY, "A second reply that is fine.", "Third reply."])


def test_select_comment_with_tag_then_reload_keeps_the_same_characters(page, live_server, moderator, conversation):
    turn = assistant_turns(conversation)[0]
    open_review(page, live_server, conversation, "mod")

    drag_select(page, turn.pk, "in Berlin")
    toolbar = page.get_by_role("toolbar", name="Selected text")
    expect(toolbar).to_be_visible()
    expect(toolbar.get_by_role("button", name="Tag")).to_be_visible()
    expect(toolbar.get_by_role("button", name="Suggest edit")).to_be_visible()
    toolbar.get_by_role("button", name="Comment").click()

    composer = page.locator("form.composer")
    composer.get_by_label("Comment text").fill("The tower is in Paris.")
    composer.get_by_label("factually incorrect").check()
    composer.get_by_role("button", name="Save").click()

    card = page.locator(f"#cards-{turn.pk} .card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("The tower is in Paris.")
    expect(card.locator(".chip")).to_have_text("factually incorrect")
    annotation = Annotation.objects.get()
    assert (annotation.exact, annotation.start, annotation.end) == ("in Berlin", 20, 29)
    expect(page.locator(f"mark[data-annotation-id='{annotation.pk}']").first).to_be_visible()
    assert highlighted_text(page, annotation.pk) == "in Berlin"

    page.reload()
    page.wait_for_selector("#review[data-ready='1']")
    assert highlighted_text(page, annotation.pk) == "in Berlin"
    # The reply's text is still exactly the turn content (marks wrap, never alter, the text).
    assert page.locator(f"#turn-{turn.pk} [data-reply-text]").text_content() == REPLY

    # Clicking the highlight focuses its card, and the card's quote leads back to the highlight.
    page.locator(f"mark[data-annotation-id='{annotation.pk}']").first.click()
    expect(page.locator(f"#card-{annotation.pk}")).to_be_focused()
    page.locator(f"#card-{annotation.pk} .quote").click()
    expect(page.locator(f"mark[data-annotation-id='{annotation.pk}']").first).to_have_class(re.compile("is-active"))
