"""The review workspace in Debian's chromium: select -> comment/tag/suggest, highlights and cards, threads,
suggestions into corrections, keyboard-only use, conflicts between two reviewers, emoji anchoring, XSS."""

from __future__ import annotations

import contextlib
import importlib
import re

import pytest
from django.apps import apps
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from annotations.models import Annotation, AnnotationStatus, Correction, Tag
from sessions.models import TurnRole
from tests.annotations.conftest import make_conversation
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def taxonomy(transactional_db) -> None:
    """The seeded tags: another transactional test's flush removes what the data migration created (and a serialized
    rollback cannot be relied on once Playwright runs, whose context gets its own database connection object)."""
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)

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
            const el = document.querySelector(`#turn-${turnId} [data-reply-md]:not([hidden])`)
                || document.querySelector(`#turn-${turnId} [data-reply-text]`);
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


def select_range(page: Page, turn_id: int, quote: str, occurrence: int = 0) -> None:
    """Select ``quote`` programmatically (a DOM Range) in the reply's view being read (formatted or raw), for
    selections a mouse cannot place exactly."""
    page.evaluate(
        """([turnId, quote, occurrence]) => {
            const el = document.querySelector(`#turn-${turnId} [data-reply-md]:not([hidden])`)
                || document.querySelector(`#turn-${turnId} [data-reply-text]`);
            const nodes = [];
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            for (let n = walker.nextNode(); n; n = walker.nextNode()) nodes.push(n);
            const text = nodes.map((n) => n.data).join("");
            let at = -1;
            for (let i = 0; i <= occurrence; i++) at = text.indexOf(quote, at + 1);
            const point = (offset, isEnd) => {
                let seen = 0;
                for (const n of nodes) {
                    if (offset < seen + n.data.length || (isEnd && offset === seen + n.data.length)) {
                        return [n, offset - seen];
                    }
                    seen += n.data.length;
                }
            };
            const range = document.createRange();
            range.setStart(...point(at, false)); range.setEnd(...point(at + quote.length, true));
            const sel = document.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        }""",
        [turn_id, quote, occurrence],
    )


HIGHLIGHTED = (
    "(id) => [...document.querySelectorAll(`mark[data-annotation-id='${id}']`)].map(m => m.textContent).join('')"
)


def highlighted_text(page: Page, annotation_id: int) -> str:
    return page.evaluate(HIGHLIGHTED, annotation_id)


def assert_highlighted(page: Page, annotation_id: int, expected: str) -> None:
    """Highlights are painted asynchronously after a card appears: wait for the paint, then compare."""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(f"([id, expected]) => ({HIGHLIGHTED})(id) === expected", arg=[annotation_id, expected])
    assert highlighted_text(page, annotation_id) == expected


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
    assert_highlighted(page, annotation.pk, "in Berlin")

    page.reload()
    page.wait_for_selector("#review[data-ready='1']")
    assert_highlighted(page, annotation.pk, "in Berlin")
    # The reply's text is still exactly the turn content (marks wrap, never alter, the text).
    assert page.locator(f"#turn-{turn.pk} [data-reply-text]").text_content() == REPLY

    # Clicking the highlight focuses its card, and the card's quote leads back to the highlight.
    page.locator(f"mark[data-annotation-id='{annotation.pk}']").first.click()
    expect(page.locator(f"#card-{annotation.pk}")).to_be_focused()
    page.locator(f"#card-{annotation.pk} .quote").click()
    expect(page.locator(f"mark[data-annotation-id='{annotation.pk}']").first).to_have_class(re.compile("is-active"))


def test_reply_and_resolve(page, live_server, moderator, expert, conversation):
    from annotations import services
    from tests.annotations.conftest import span

    turn = assistant_turns(conversation)[0]
    a = services.annotation_create(actor=moderator, turn=turn, body="Check this", **span(turn, "1889"))
    open_review(page, live_server, conversation, "expert")

    card = page.locator(f"#card-{a.pk}")
    expect(card.get_by_role("button", name="Resolve")).to_be_hidden()  # controls show on the active card only
    card.locator(".card-head").click()
    card.get_by_label("Reply").fill("Confirmed: 1889 is right.")
    card.get_by_role("button", name="Reply").click()
    expect(card.locator(".thread")).to_contain_text("Confirmed: 1889 is right.")

    card.get_by_role("button", name="Resolve").click()
    expect(card.locator(".badge-resolved")).to_have_text("Resolved")
    expect(card.get_by_role("button", name="Reopen")).to_be_visible()
    a.refresh_from_db()
    assert a.status == AnnotationStatus.RESOLVED and a.replies.get().body == "Confirmed: 1889 is right."

    # The audit trail is visible on the annotation.
    card.locator("details.history summary").click()
    expect(card.locator(".audit")).to_contain_text("resolve")
    expect(card.locator(".audit")).to_contain_text("reply")


def test_suggest_edit_then_accept_shows_the_corrected_reply(page, live_server, expert, second_expert, conversation):
    turn = assistant_turns(conversation)[0]
    open_review(page, live_server, conversation, "expert")

    drag_select(page, turn.pk, "Berlin")
    page.get_by_role("toolbar", name="Selected text").get_by_role("button", name="Suggest edit").click()
    composer = page.locator("form.composer")
    composer.get_by_label("Replacement").fill("Paris")
    composer.get_by_role("button", name="Save").click()

    card = page.locator(f"#cards-{turn.pk} .card.is-suggestion")
    expect(card.locator("del")).to_have_text("Berlin")
    expect(card.locator("ins")).to_have_text("Paris")
    suggestion = Annotation.objects.get()
    expect(page.locator(f"mark.hl-insert[data-annotation-id='{suggestion.pk}']")).to_have_attribute(
        "data-replacement", "Paris"
    )

    # Deletion and insertion are drawn distinctly: the old words struck through, the new ones underlined, not struck.
    styles = """(id) => {
        const mark = document.querySelector(`mark[data-annotation-id='${id}']`);
        const after = getComputedStyle(mark, "::after");
        return [getComputedStyle(mark).textDecorationLine, after.textDecorationLine, after.content];
    }"""
    assert page.evaluate(styles, suggestion.pk) == ["line-through", "underline", '"Paris"']

    card.get_by_role("button", name="Accept").click()
    corrected = page.locator(f"#correction-{turn.pk} [data-correction-text]")
    expect(corrected).to_have_text(REPLY.replace("Berlin", "Paris"))
    expect(card.locator(".badge-accepted")).to_be_visible()
    # Once accepted it stops looking pending: no strike-through, no insertion drawn over the original reply.
    expect(page.locator(f"mark.hl-accepted[data-annotation-id='{suggestion.pk}']")).to_have_count(1)
    assert page.evaluate(styles, suggestion.pk)[:2] == ["none", "none"]

    # Four-eyes: the expert who accepted the edit wrote the correction, so a second expert approves it.
    expect(page.locator(f"#correction-{turn.pk}").get_by_role("button", name="Approve correction")).to_be_disabled()
    expect(page.locator(f"#correction-{turn.pk} .four-eyes")).to_contain_text("another domain expert must approve")
    page.context.clear_cookies()
    open_review(page, live_server, conversation, "expert2")
    page.locator(f"#correction-{turn.pk}").get_by_role("button", name="Approve correction").click()
    expect(page.locator(f"#correction-{turn.pk} .badge-approved")).to_have_text("Approved")
    assert Correction.objects.get(turn=turn).status == "approved"


def test_keyboard_only_pass(page, live_server, moderator, expert, conversation):
    turn, second, _ = assistant_turns(conversation)
    open_review(page, live_server, conversation, "expert")

    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_hidden()

    page.keyboard.press("j")
    expect(page.locator(f"#turn-{turn.pk}")).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator(f"#turn-{second.pk}")).to_be_focused()
    page.keyboard.press("k")
    expect(page.locator(f"#turn-{turn.pk}")).to_be_focused()

    # Select "The Eiffel" with the keyboard: Ctrl+Shift+Right twice selects two words.
    page.keyboard.press("Control+Shift+ArrowRight")
    page.keyboard.press("Control+Shift+ArrowRight")
    expect(page.get_by_role("toolbar", name="Selected text")).to_be_visible()
    page.keyboard.press("c")
    expect(page.get_by_label("Comment text")).to_be_focused()
    page.keyboard.type("Keyboard comment")
    page.keyboard.press("Tab")  # first tag checkbox
    page.keyboard.press("Space")
    page.keyboard.press("Control+Enter")

    first = Tag.objects.order_by("group", "name").first()
    card = page.locator(f"#cards-{turn.pk} .card")
    expect(card).to_have_count(1)
    expect(card).to_be_focused()
    expect(card.locator(".chip")).to_have_text(first.name)
    a = Annotation.objects.get()
    assert a.exact.strip() == "The Eiffel" and a.start == 0

    page.keyboard.press("e")  # resolve the focused card
    expect(card.locator(".badge-resolved")).to_be_visible()
    expect(card).to_be_focused()

    # A tag hotkey on the focused reply (no selection) tags the whole reply.
    page.keyboard.press("j")
    expect(page.locator(f"#turn-{second.pk}")).to_be_focused()
    unsafe = Tag.objects.get(slug="unsafe")
    page.keyboard.press(unsafe.hotkey)
    expect(page.locator(f"#cards-{second.pk} .card .chip")).to_have_text("unsafe")
    whole = Annotation.objects.get(turn=second)
    assert whole.start is None and list(whole.tags.all()) == [unsafe]

    # Suggest by keyboard, then accept it with "a" on the focused card.
    page.keyboard.press("k")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("s")
    expect(page.get_by_label("Replacement")).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("A")
    page.keyboard.press("Control+Enter")
    suggestion = page.locator(f"#cards-{turn.pk} .card.is-suggestion")
    expect(suggestion).to_be_focused()
    page.keyboard.press("a")
    expect(page.locator(f"#correction-{turn.pk} [data-correction-text]")).to_have_text("A" + REPLY[3:])


def test_two_reviewers_saving_the_same_annotation_see_a_conflict_and_both_texts_survive(
    browser, live_server, moderator, conversation, page_problems
):
    from annotations import services
    from tests.annotations.conftest import span

    turn = assistant_turns(conversation)[0]
    a = services.annotation_create(actor=moderator, turn=turn, body="Original text", **span(turn, "Berlin"))
    first_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    second_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        first, second = first_ctx.new_page(), second_ctx.new_page()
        for pg in (first, second):
            open_review(pg, live_server, conversation, "mod")
            pg.locator(f"#card-{a.pk} .card-head").click()
            pg.locator(f"#card-{a.pk} details.inline-edit summary").first.click()

        first.locator(f"#card-{a.pk}").get_by_label("Comment text").fill("Edit from tab one")
        first.locator(f"#card-{a.pk}").get_by_role("button", name="Save changes").click()
        expect(first.locator(f"#card-{a.pk} .body")).to_have_text("Edit from tab one")

        second.locator(f"#card-{a.pk}").get_by_label("Comment text").fill("Edit from tab two")
        second.locator(f"#card-{a.pk}").get_by_role("button", name="Save changes").click()
        conflict = second.locator(f"#card-{a.pk} [data-conflict]")
        expect(conflict).to_be_visible()
        expect(conflict.locator(".conflict-theirs")).to_have_text("Edit from tab one")
        expect(conflict.locator(".conflict-yours")).to_have_text("Edit from tab two")
        a.refresh_from_db()
        assert a.body == "Edit from tab one"  # nothing overwritten

        conflict.get_by_role("button", name="Save mine instead").click()
        expect(second.locator(f"#card-{a.pk} .body")).to_have_text("Edit from tab two")
        a.refresh_from_db()
        assert a.body == "Edit from tab two" and a.version == 3
        edits = [(e.before["body"], e.after["body"]) for e in a.audit_events.filter(action="edit")]
        assert edits == [("Original text", "Edit from tab one"), ("Edit from tab one", "Edit from tab two")]
    finally:
        first_ctx.close()
        second_ctx.close()


def test_new_annotations_by_others_appear_without_reload(page, live_server, moderator, expert, conversation):
    from annotations import services
    from tests.annotations.conftest import span

    turn = assistant_turns(conversation)[0]
    open_review(page, live_server, conversation, "expert")
    a = services.annotation_create(actor=moderator, turn=turn, body="Appears live", **span(turn, "330 metres"))
    expect(page.locator(f"#card-{a.pk}")).to_contain_text("Appears live", timeout=15_000)
    expect(page.locator(f"mark[data-annotation-id='{a.pk}']").first).to_be_visible()
    assert_highlighted(page, a.pk, "330 metres")


def test_reply_with_emoji_and_zwj_sequences_anchors_exactly(page, live_server, moderator):
    text = f"Family {FAMILY} likes caf\u00e9 and cafe\u0301 {THUMBS} a lot.\r\nAlso \U0001f1eb\U0001f1f7 flags."
    conversation = make_conversation(replies=[text])
    turn = assistant_turns(conversation)[0]
    open_review(page, live_server, conversation, "mod")

    quote = f"{FAMILY} likes caf\u00e9 and cafe\u0301 {THUMBS}"
    select_range(page, turn.pk, quote)
    page.get_by_role("toolbar", name="Selected text").get_by_role("button", name="Comment").click()
    page.locator("form.composer").get_by_label("Comment text").fill("emoji span")
    page.locator("form.composer").get_by_role("button", name="Save").click()
    expect(page.locator(f"#cards-{turn.pk} .card")).to_have_count(1)

    a = Annotation.objects.get()
    start = text.index(quote)  # Python indices are code points
    assert (a.start, a.end, a.exact) == (start, start + len(quote), quote)
    assert_highlighted(page, a.pk, quote)

    # A selection that cuts through a ZWJ sequence or a combining mark widens to whole characters.
    page.evaluate(
        """(turnId) => {
            const el = document.querySelector(`#turn-${turnId} [data-reply-text]`);
            // UTF-16 offsets 9..10 of the reply: the first ZWJ inside the family emoji (which sits in a <mark>).
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            let node, seen = 0;
            while ((node = walker.nextNode()) && seen + node.data.length <= 9) seen += node.data.length;
            const range = document.createRange();
            range.setStart(node, 9 - seen); range.setEnd(node, 10 - seen);
            const sel = document.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        }""",
        turn.pk,
    )
    page.keyboard.press("c")
    page.locator("form.composer").get_by_label("Comment text").fill("family only")
    page.locator("form.composer").get_by_role("button", name="Save").click()
    expect(page.locator(f"#cards-{turn.pk} .card")).to_have_count(2)
    b = Annotation.objects.exclude(pk=a.pk).get()
    assert b.exact == FAMILY and (b.start, b.end) == (7, 7 + len(FAMILY))

    page.reload()
    page.wait_for_selector("#review[data-ready='1']")
    assert_highlighted(page, a.pk, quote)
    assert page.locator(f"#turn-{turn.pk} [data-reply-text]").text_content() == text


XSS = [
    "<script>window.__xss = 1</script>",
    "<img src=x onerror=\"window.__xss=1\">",
    "<svg onload=window.__xss=1>",
    "\"><iframe src=javascript:window.__xss=1>",
    "<a hx-get=\"/logout/\" hx-trigger=\"load\">x</a>",
    "{{ 7*7 }} ${7*7} javascript:alert(1)",
]


def test_xss_corpus_in_replies_comments_and_tag_names_stays_inert(page, live_server, moderator, page_problems):
    from annotations import services
    from tests.annotations.conftest import span

    payload = " ".join(XSS)
    conversation = make_conversation(replies=[f"Reply {payload} end"])
    turn = assistant_turns(conversation)[0]
    tag = Tag.objects.create(name=XSS[1], slug="xss", colour="#123456", hotkey="9")
    for i, bad in enumerate(XSS):
        services.annotation_create(actor=moderator, turn=turn, body=bad, tag_ids=[tag.pk], **span(turn, bad))
        services.reply_create(actor=moderator, annotation_id=Annotation.objects.order_by("-id")[i and 0].pk, body=bad)
    requests = []
    page.on("request", lambda r: requests.append(r.url))

    open_review(page, live_server, conversation, "mod")
    expect(page.locator(".card")).to_have_count(len(XSS))
    assert page.locator(f"#turn-{turn.pk} [data-reply-text]").text_content() == f"Reply {payload} end"
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#review script, #review img, #review svg, #review iframe, #review a[hx-get]").count() == 0
    expect(page.locator(".chip").first).to_have_text(XSS[1])
    assert not [u for u in requests if "logout" in u or u.endswith("/x")]
    # Comments typed in the page go through the same escaping.
    select_range(page, turn.pk, "Reply")
    page.keyboard.press("c")
    page.locator("form.composer").get_by_label("Comment text").fill(XSS[0] + XSS[1])
    page.locator("form.composer").get_by_role("button", name="Save").click()
    expect(page.locator(".card")).to_have_count(len(XSS) + 1)
    assert page.evaluate("() => window.__xss") is None
    assert not page_problems


def test_overlapping_highlights_tag_button_and_filters(page, live_server, moderator, expert, conversation):
    from annotations import services
    from tests.annotations.conftest import span

    turn = assistant_turns(conversation)[0]
    wide = services.annotation_create(actor=expert, turn=turn, body="wide", **span(turn, "is in Berlin. It was"))
    open_review(page, live_server, conversation, "mod")

    # A second, overlapping highlight made with the toolbar's Tag button.
    drag_select(page, turn.pk, "Berlin")
    page.get_by_role("toolbar", name="Selected text").get_by_role("button", name="Tag").click()
    composer = page.locator("form.composer")
    expect(composer.locator("input[name=tags]").first).to_be_focused()  # Tag mode starts in the tag picker
    composer.get_by_label("wrong tone").check()
    composer.get_by_role("button", name="Save").click()
    expect(page.locator(f"#cards-{turn.pk} .card")).to_have_count(2)
    narrow = Annotation.objects.exclude(pk=wide.pk).get()
    assert narrow.exact == "Berlin" and narrow.body == ""
    assert_highlighted(page, wide.pk, "is in Berlin. It was")
    assert_highlighted(page, narrow.pk, "Berlin")

    # Clicking inside the overlap focuses the innermost highlight's card; outside it, the wide one's.
    page.locator(f"mark[data-annotation-id='{narrow.pk}']").first.click()
    expect(page.locator(f"#card-{narrow.pk}")).to_be_focused()
    page.locator(f"mark[data-annotation-id='{wide.pk}']").first.click(position={"x": 2, "y": 5})
    expect(page.locator(f"#card-{wide.pk}")).to_be_focused()

    # Filters hide cards and their highlights, and bring them back.
    page.locator("#filter-tag").select_option(label="wrong tone")
    expect(page.locator(f"#card-{wide.pk}")).to_be_hidden()
    expect(page.locator(f"#card-{narrow.pk}")).to_be_visible()
    expect(page.locator(f"mark[data-annotation-id='{wide.pk}']")).to_have_count(0)
    page.locator("#filter-tag").select_option("")
    page.locator("#filter-author").select_option(label="expert")
    expect(page.locator(f"#card-{narrow.pk}")).to_be_hidden()
    expect(page.locator(f"#card-{wide.pk}")).to_be_visible()
    page.locator("#filter-author").select_option("")
    page.locator(f"#card-{narrow.pk} .card-head").click()
    page.locator(f"#card-{narrow.pk}").get_by_role("button", name="Resolve").click()
    expect(page.locator(f"#card-{narrow.pk} .badge-resolved")).to_be_visible()
    page.locator("#filter-status").select_option("open")
    expect(page.locator(f"#card-{narrow.pk}")).to_be_hidden()
    expect(page.locator(f"#card-{wide.pk}")).to_be_visible()


def test_whole_reply_suggestion_accepted_over_other_comments_keeps_every_highlight(
    page, live_server, moderator, expert, conversation
):
    """A suggestion spanning the whole reply, accepted, over two comments and a nested pair: every highlight still
    renders after a reload (no "Scope contains no text nodes"), each reachable from its card, and the accepted
    suggestion no longer looks pending."""
    from annotations import services
    from tests.annotations.conftest import span

    turn = assistant_turns(conversation)[0]
    berlin = services.annotation_create(actor=moderator, turn=turn, body="wrong city", **span(turn, "Berlin"))
    year = services.annotation_create(actor=moderator, turn=turn, body="check", **span(turn, "completed in 1889"))
    inner = services.annotation_create(actor=expert, turn=turn, body="year", **span(turn, "1889"))
    same = services.annotation_create(actor=expert, turn=turn, body="same span", **span(turn, "1889"))
    whole = services.annotation_create(
        actor=expert, turn=turn, kind="suggestion", replacement="The Eiffel Tower is in Paris.", **span(turn, REPLY)
    )
    open_review(page, live_server, conversation, "expert")
    expect(page.locator(f"mark.hl-insert[data-annotation-id='{whole.pk}']")).to_have_attribute(
        "data-replacement", "The Eiffel Tower is in Paris."
    )
    page.locator(f"#card-{whole.pk} .card-head").click()
    page.locator(f"#card-{whole.pk}").get_by_role("button", name="Accept").click()
    expect(page.locator(f"#card-{whole.pk} .badge-accepted")).to_be_visible()

    for _ in range(2):  # as painted after the accept, and after a reload
        assert_highlighted(page, whole.pk, REPLY)
        assert_highlighted(page, berlin.pk, "Berlin")
        assert_highlighted(page, year.pk, "completed in 1889")
        assert_highlighted(page, inner.pk, "1889")
        assert_highlighted(page, same.pk, "1889")
        expect(page.locator(f"mark.hl-pending[data-annotation-id='{whole.pk}']")).to_have_count(0)
        expect(page.locator(f"mark.hl-insert[data-annotation-id='{whole.pk}']")).to_have_count(0)
        # The innermost highlight is on top: clicking "Berlin" opens its own card, not the whole-reply one.
        page.locator(f"mark[data-annotation-id='{berlin.pk}']").first.click()
        expect(page.locator(f"#card-{berlin.pk}")).to_be_focused()
        page.reload()
        page.wait_for_selector("#review[data-ready='1']")


def test_a_selection_straying_into_the_reply_label_is_clamped_to_the_reply_text(
    page, live_server, moderator, conversation
):
    turn = assistant_turns(conversation)[0]
    open_review(page, live_server, conversation, "mod")
    page.evaluate(
        """(turnId) => {
            const reply = document.getElementById(`turn-${turnId}`);
            const head = reply.querySelector(".turn-head"), text = reply.querySelector("[data-reply-text]");
            const range = document.createRange();
            range.setStart(head.firstChild, 3);
            range.setEnd(text.firstChild, "The Eiffel".length);
            const sel = document.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        }""",
        turn.pk,
    )
    page.get_by_role("toolbar", name="Selected text").get_by_role("button", name="Comment").click()
    composer = page.locator("form.composer")
    composer.get_by_label("Comment").fill("clamped")
    composer.get_by_role("button", name="Save").click()
    expect(page.locator(f"#cards-{turn.pk} .card")).to_have_count(1)
    annotation = Annotation.objects.get()
    assert (annotation.start, annotation.end, annotation.exact) == (0, len("The Eiffel"), "The Eiffel")


def test_overlapping_nested_identical_and_mid_emoji_spans_all_render_and_survive_a_reload(page, live_server, moderator):
    from annotations import services
    from tests.annotations.conftest import span

    text = f"Family {FAMILY} likes caf\u00e9 and tea, and {THUMBS} a lot."
    conversation = make_conversation(replies=[text])
    turn = assistant_turns(conversation)[0]

    def make(quote: str, body: str) -> Annotation:
        return services.annotation_create(actor=moderator, turn=turn, body=body, **span(turn, quote))

    first, second, third = make("Family", "a"), make("Family " + FAMILY[0], "b"), make("ly " + FAMILY + " likes", "c")
    outer, nested = make("likes caf\u00e9 and tea", "outer"), make("caf\u00e9", "nested")
    twin_a, twin_b = make("tea", "twin a"), make("tea", "twin b")
    # Ends inside the family emoji: after its first person and the joiner (code points, as stored).
    mid_emoji = services.annotation_create(
        actor=moderator, turn=turn, body="mid emoji", start=7, end=9, exact=FAMILY[:2],
        text_hash=span(turn, "Family")["text_hash"],
    )
    expected = {
        first: "Family", second: "Family " + FAMILY[0], third: "ly " + FAMILY + " likes",
        outer: "likes caf\u00e9 and tea", nested: "caf\u00e9", twin_a: "tea", twin_b: "tea", mid_emoji: FAMILY[:2],
    }
    open_review(page, live_server, conversation, "mod")
    for _ in range(2):
        for annotation, quote in expected.items():
            assert_highlighted(page, annotation.pk, quote)
            expect(page.locator(f"#card-{annotation.pk}")).to_be_visible()
        # The innermost highlight takes the click: the nested one inside the outer, a twin inside "tea".
        page.locator(f"mark[data-annotation-id='{nested.pk}']").first.click()
        expect(page.locator(f"#card-{nested.pk}")).to_be_focused()
        page.locator(f"mark[data-annotation-id='{outer.pk}']").first.click(position={"x": 2, "y": 5})
        expect(page.locator(f"#card-{outer.pk}")).to_be_focused()
        assert page.locator(f"#turn-{turn.pk} [data-reply-text]").text_content() == text
        page.reload()
        page.wait_for_selector("#review[data-ready='1']")


# --- Markdown replies and the end user's feedback ---------------------------------------------------------------------

MD_REPLY = (
    "To reset **your** password:\r\n\r\n"
    "1. Open *Settings* &amp; tap `Reset`\n"
    "2. Confirm with the code\n\n"
    "```python\nprint('reset done')\nreset(user, force=True)\n```\n\n"
    f"Done {THUMBS} ok."
)


def formatted_view(page: Page, turn_id: int):
    return page.locator(f"#turn-{turn_id} [data-reply-md]")


def press_comment(page: Page, body: str, count: int, turn_id: int) -> Annotation:
    before = set(Annotation.objects.values_list("pk", flat=True))
    page.keyboard.press("c")
    page.locator("form.composer").get_by_label("Comment text").fill(body)
    page.locator("form.composer").get_by_role("button", name="Save").click()
    expect(page.locator(f"#cards-{turn_id} .card")).to_have_count(count)
    return Annotation.objects.exclude(pk__in=before).get()


def test_selections_in_a_markdown_list_and_code_block_save_exact_source_offsets(page, live_server, moderator):
    conversation = make_conversation(replies=[MD_REPLY])
    turn = assistant_turns(conversation)[0]
    open_review(page, live_server, conversation, "mod")

    view = formatted_view(page, turn.pk)
    expect(view).to_be_visible()
    expect(page.locator(f"#turn-{turn.pk} [data-reply-text]")).to_be_hidden()
    expect(view.locator("ol > li")).to_have_count(2)
    expect(view.locator("strong")).to_have_text("your")
    expect(view.locator("pre code")).to_have_css("font-family", re.compile("mono", re.I))

    # A mouse selection across list text and an emphasis: offsets of the stored text, markup included.
    drag_select(page, turn.pk, "Open Settings & tap")
    page.get_by_role("toolbar", name="Selected text").get_by_role("button", name="Comment").click()
    page.locator("form.composer").get_by_label("Comment text").fill("list item")
    page.locator("form.composer").get_by_role("button", name="Save").click()
    expect(page.locator(f"#cards-{turn.pk} .card")).to_have_count(1)
    in_list = Annotation.objects.get()
    start = MD_REPLY.index("Open")
    end = MD_REPLY.index("tap") + len("tap")
    assert (in_list.start, in_list.end) == (start, end)
    assert in_list.exact == MD_REPLY[start:end] == "Open *Settings* &amp; tap"

    # Inside the fenced code block.
    select_range(page, turn.pk, "force=True")
    in_code = press_comment(page, "code", 2, turn.pk)
    start = MD_REPLY.index("force=True")
    assert (in_code.start, in_code.end, in_code.exact) == (start, start + len("force=True"), "force=True")

    for _ in range(2):  # as painted after the save, then after a reload
        assert_highlighted(page, in_list.pk, "Open Settings & tap")
        assert_highlighted(page, in_code.pk, "force=True")
        assert page.locator(f"mark[data-annotation-id='{in_code.pk}']").evaluate("m => !!m.closest('pre')")
        page.reload()
        page.wait_for_selector("#review[data-ready='1']")
    assert page.locator(f"#turn-{turn.pk} [data-reply-text]").text_content() == MD_REPLY


def test_a_span_ending_inside_an_emoji_in_a_formatted_reply(page, live_server, moderator):
    conversation = make_conversation(replies=[MD_REPLY])
    turn = assistant_turns(conversation)[0]
    open_review(page, live_server, conversation, "mod")
    # From "Done" to the middle of the thumbs emoji (between its two UTF-16 halves).
    page.evaluate(
        """(turnId) => {
            const view = document.querySelector(`#turn-${turnId} [data-reply-md]`);
            const span = [...view.querySelectorAll("span[data-src-start]")]
                .find((s) => s.textContent.startsWith("Done"));
            const node = span.firstChild;
            const range = document.createRange();
            range.setStart(node, 0); range.setEnd(node, "Done ".length + 1);
            const sel = document.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        }""",
        turn.pk,
    )
    a = press_comment(page, "emoji", 1, turn.pk)
    start = MD_REPLY.index("Done")
    assert (a.start, a.end, a.exact) == (start, start + len(f"Done {THUMBS}"), f"Done {THUMBS}")
    assert_highlighted(page, a.pk, f"Done {THUMBS}")
    page.reload()
    page.wait_for_selector("#review[data-ready='1']")
    assert_highlighted(page, a.pk, f"Done {THUMBS}")


def test_raw_toggle_is_remembered_and_highlights_follow_the_view(page, live_server, moderator):
    from annotations import services
    from tests.annotations.conftest import span

    conversation = make_conversation(replies=[MD_REPLY, "Plain prose without any markup."])
    turn, plain = assistant_turns(conversation)
    a = services.annotation_create(actor=moderator, turn=turn, body="x", **span(turn, "Settings"))
    open_review(page, live_server, conversation, "mod")
    expect(page.locator(f"#turn-{plain.pk} [data-action=view]")).to_have_count(0)  # nothing to format
    assert_highlighted(page, a.pk, "Settings")

    page.locator(f"#turn-{turn.pk} [data-action=view]").click()
    expect(page.locator(f"#turn-{turn.pk} [data-reply-text]")).to_be_visible()
    expect(formatted_view(page, turn.pk)).to_be_hidden()
    raw_mark = page.locator(f"#turn-{turn.pk} [data-reply-text] mark[data-annotation-id='{a.pk}']")
    expect(raw_mark).to_have_text("Settings")
    page.reload()
    page.wait_for_selector("#review[data-ready='1']")
    expect(page.locator(f"#turn-{turn.pk} [data-reply-text]")).to_be_visible()
    expect(page.locator(f"#turn-{turn.pk} [data-action=view]")).to_have_attribute("aria-pressed", "true")

    page.locator(f"#turn-{turn.pk} [data-action=view]").click()
    expect(formatted_view(page, turn.pk).locator(f"mark[data-annotation-id='{a.pk}']")).to_have_text("Settings")
    expect(page.locator(f"#turn-{turn.pk} [data-reply-text] mark")).to_have_count(0)


def test_review_page_shows_and_filters_by_the_end_users_feedback(page, live_server, moderator):
    from tests.factories import add_feedback

    conversation = make_conversation(replies=[REPLY, "A second reply that is fine.", "Third reply."])
    first, second, third = assistant_turns(conversation)
    add_feedback(first, kind="thumbs_down", categories=["wrong city"], text="It is in Paris!")
    add_feedback(first, kind="correction", correction="The Eiffel Tower is in Paris.")
    add_feedback(second, kind="thumbs_up")
    add_feedback(third, kind="regenerate")
    open_review(page, live_server, conversation, "mod")

    voice = page.locator(f"#turn-{first.pk} .user-voice")
    expect(voice).to_contain_text("Thumbs down")
    expect(voice.locator(".chip")).to_have_text("wrong city")
    expect(voice).to_contain_text("It is in Paris!")
    voice.get_by_text("The user's correction").click()
    expect(voice).to_contain_text("The Eiffel Tower is in Paris.")
    expect(page.locator(f"#turn-{second.pk} .user-voice")).to_contain_text("Thumbs up")
    expect(page.locator(f"#turn-{third.pk} .user-voice")).to_contain_text("implicit Regenerated")

    page.get_by_label("End-user feedback").select_option("thumbs_down")
    expect(page.locator(f"#row-{first.pk}")).to_be_visible()
    expect(page.locator(f"#row-{second.pk}")).to_be_hidden()
    expect(page.locator(f"#row-{third.pk}")).to_be_hidden()
    expect(page.locator("#feedback-count")).to_have_text("1 of 3 replies")
    assert "feedback=thumbs_down" in page.url

    # The filter is in the address: a reload (or a shared link) keeps it.
    page.reload()
    page.wait_for_selector("#review[data-ready='1']")
    expect(page.locator(f"#row-{second.pk}")).to_be_hidden()
    page.get_by_label("End-user feedback").select_option("negative")
    expect(page.locator(f"#row-{third.pk}")).to_be_visible()
    expect(page.locator(f"#row-{second.pk}")).to_be_hidden()
    page.get_by_label("End-user feedback").select_option("")
    expect(page.locator(f"#row-{second.pk}")).to_be_visible()


def test_markdown_links_images_and_raw_html_in_a_reply_stay_inert(page, live_server, moderator):
    reply = (
        "**Bold** <script>window.__xss = 1</script> <img src=x onerror=\"window.__xss=1\">\n\n"
        "[click](javascript:window.__xss=1) [out](/logout/) ![pixel](https://tracker.example/p.png)\n\n"
        '<div hx-get="/logout/" hx-trigger="load">htmx bait</div>'
    )
    conversation = make_conversation(replies=[reply])
    turn = assistant_turns(conversation)[0]
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    open_review(page, live_server, conversation, "mod")
    view = formatted_view(page, turn.pk)
    expect(view.locator("strong")).to_have_text("Bold")
    expect(view).to_contain_text("<script>window.__xss = 1</script>")
    expect(view).to_contain_text('<div hx-get="/logout/" hx-trigger="load">htmx bait</div>')
    assert view.locator("script, img, div, [hx-get], [onerror], a[href^='javascript'], a[href^='/']").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert not [u for u in requests if "logout" in u or "tracker.example" in u or u.endswith("/x")]


def test_a_selection_bounded_by_markup_leaves_the_markup_out(page, live_server, moderator):
    conversation = make_conversation(replies=[MD_REPLY])
    turn = assistant_turns(conversation)[0]
    open_review(page, live_server, conversation, "mod")
    # From the end of "Open " (just before the emphasis) to the start of the space after it.
    page.evaluate(
        """(turnId) => {
            const view = document.querySelector(`#turn-${turnId} [data-reply-md]`);
            const spans = [...view.querySelectorAll("span[data-src-start]")];
            const open = spans.find((s) => s.textContent === "Open ");
            const after = spans[spans.indexOf(open) + 2];  // "Open ", "Settings", " "
            const range = document.createRange();
            range.setStart(open.firstChild, open.textContent.length); range.setEnd(after, 0);
            const sel = document.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        }""",
        turn.pk,
    )
    a = press_comment(page, "emphasis only", 1, turn.pk)
    start = MD_REPLY.index("Settings")
    assert (a.start, a.end, a.exact) == (start, start + len("Settings"), "Settings")
    assert_highlighted(page, a.pk, "Settings")


def test_keyboard_selection_and_a_pending_suggestion_in_a_formatted_reply(page, live_server, moderator):
    from annotations import services
    from tests.annotations.conftest import span

    conversation = make_conversation(replies=[MD_REPLY])
    turn = assistant_turns(conversation)[0]
    suggestion = services.annotation_create(
        actor=moderator, turn=turn, kind="suggestion", replacement="Preferences", **span(turn, "Settings")
    )
    open_review(page, live_server, conversation, "mod")
    insert = formatted_view(page, turn.pk).locator(f"mark.hl-insert[data-annotation-id='{suggestion.pk}']")
    expect(insert).to_have_text("Settings")
    expect(insert).to_have_attribute("data-replacement", "Preferences")

    page.keyboard.press("j")
    expect(page.locator(f"#turn-{turn.pk}")).to_be_focused()
    for _ in range(len("To reset")):
        page.keyboard.press("Shift+ArrowRight")
    a = press_comment(page, "by keyboard", 2, turn.pk)
    assert (a.start, a.end, a.exact) == (0, len("To reset"), "To reset")
    assert_highlighted(page, a.pk, "To reset")
