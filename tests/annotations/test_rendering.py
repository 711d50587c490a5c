"""Markdown replies: the source map from rendered text to code points of the stored text, sanitising, the plain-prose
shortcut, JSON context, and the end user's feedback on the review page."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations import rendering, selectors
from sessions.models import FeedbackEvent, TurnRole
from tests.annotations.conftest import make_conversation
from tests.factories import add_feedback

SPAN = re.compile(r'<span data-src-start="(\d+)" data-src-end="(\d+)"( class="md-atomic")?>([^<]*)</span>')

#: Pieces that combine into every kind of Markdown the mapper handles, and the awkward characters around them.
PIECES = [
    "word",
    " ",
    "\n",
    "\n\n",
    "*",
    "**",
    "_",
    "`",
    "```\n",
    "- ",
    "1. ",
    "> ",
    "# ",
    '[a](http://b "c")',
    "&amp;",
    "\\*",
    "\\",
    "|",
    "| x |\n|---|\n| y |\n",
    "    code\n",
    "<b>",
    "é",
    "e\u0301",
    "\U0001f469\u200d\U0001f467",
    "\r\n",
    "\r",
    "\t",
    "![i](x)",
    "<http://a.b>",
    "~~",
    "  \n",
    "[r][1]\n\n[1]: http://x\n",
    "\0",
]


def spans(text: str) -> list[tuple[int, int, bool, str]]:
    return [
        (int(m[1]), int(m[2]), bool(m[3]), html.unescape(m[4]))
        for m in SPAN.finditer(rendering.render_markdown(text).html)
    ]


def corresponds(rendered: str, source: str) -> bool:
    """Character for character, allowing what normalising changes: a line ending shown as a space in a code span."""
    return len(rendered) == len(source) and all(
        r == s or (s == "\n" and r == " ") for r, s in zip(rendered, source, strict=False)
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=14).map("".join))
def test_every_mapped_span_is_its_range_of_the_stored_text(text):
    last = 0
    for start, end, atomic, shown in spans(text):
        assert last <= start < end <= len(text), (text, start, end)
        if not atomic:  # linear spans: the browser converts offsets inside them one to one
            assert corresponds(shown, text[start:end]), (text, shown, text[start:end])
        last = end


def test_list_emphasis_code_and_table_text_map_to_their_source():
    text = (
        'Steps:\r\n\r\n1. Open **the** app\n2. Tap `Settings` then [docs](https://x.y "a y") y\n\n'
        "```python\nprint('hi')\n  x = 1\n```\n\n| a | b |\n|---:|:-|\n| 1 | z |\n"
    )
    found = {shown: (start, end) for start, end, _, shown in spans(text)}
    for piece in ("Open ", "the", " app", "Settings", "docs", " y", "print('hi')", "  x = 1", "z"):
        start, end = found[piece]
        assert text[start:end] == piece
    # The newline after "Steps:" is CR LF in the stored text: the list after it is placed by code points of that text.
    assert found["Open "][0] == text.index("Open")
    assert 'class="md-right"' in rendering.render_markdown(text).html  # no inline style (CSP)


def test_entities_and_escapes_stand_for_their_whole_source():
    assert (0, 5, True, "&") in spans("&amp; \\* x")
    assert (6, 8, True, "*") in spans("&amp; \\* x")


def test_raw_html_links_and_images_are_inert():
    text = (
        '<script>alert(1)</script> <div hx-get="/logout/" hx-trigger="load">x</div> '
        "[click](javascript:alert(1)) [home](/logout/) [ok](https://example.org/a) "
        "![pixel](https://tracker.example/p.png) <img src=x onerror=1>"
    )
    out = rendering.render_markdown(text).html
    tags = re.findall(r"<([a-z0-9]+)([^>]*)>", out)
    assert {name for name, _ in tags} <= {"p", "span", "a"}
    attributes = {attr for _, attrs in tags for attr in re.findall(r'([a-z-]+)="', attrs)}
    assert attributes <= {"data-src-start", "data-src-end", "class", "title", "href", "rel"}
    assert re.findall(r'href="([^"]*)"', out) == ["https://example.org/a"]  # no javascript:, no relative links
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out  # raw HTML is text
    assert '<span class="md-image" title="Image: https://tracker.example/p.png">' in out  # never loaded


def test_plain_prose_is_not_offered_formatted():
    assert not rendering.render_markdown("Just a sentence.\nAnd a second line.").formatted
    assert not rendering.render_markdown("  One paragraph.\r\n\r\nAnother, 2 * 3 = 6.\n").formatted
    assert rendering.render_markdown("A **bold** claim.").formatted
    assert rendering.render_markdown("- a list").formatted


def test_json_context_is_indented_json():
    assert rendering.pretty_json([{"ok": True, "name": "é"}]) == '[\n  {\n    "ok": true,\n    "name": "é"\n  }\n]'
    assert rendering.json_or_text('{"a": null}') == '{\n  "a": null\n}'
    assert rendering.json_or_text("{not json") == "{not json"
    assert rendering.json_or_text("plain") == "plain"


def test_feedback_flags_name_what_the_filter_matches():
    events = [FeedbackEvent(kind="rating", rating=1, text="meh"), FeedbackEvent(kind="copy")]
    assert selectors.feedback_flags(events).split() == sorted(
        ["any", "rating", "copy", "negative", "low_rating", "text", "implicit"]
    )
    assert selectors.feedback_flags([]) == ""


@pytest.mark.django_db
def test_review_page_shows_markdown_json_tool_calls_and_the_users_feedback(client, moderator):
    conversation = make_conversation(replies=["A **bold** answer with `code`."])
    turn = conversation.turns.get(role=TurnRole.ASSISTANT)
    turn.tool_calls = [{"name": "lookup", "arguments": {"exact": True, "city": None}}]
    turn.save(update_fields=["tool_calls"])
    add_feedback(turn, kind="thumbs_down", categories=["wrong"], text="Not what I asked", correction="Better text")
    client.force_login(moderator)
    page = client.get(reverse("annotations:review", args=[conversation.pk])).content.decode()
    assert "<strong><span" in page and "<code><span" in page
    assert "&quot;exact&quot;: true" in page and "True" not in page.split("Tool calls", 1)[1].split("</pre>")[0]
    voice = page[page.index('class="user-voice"') :]
    for shown in ("Thumbs down", "wrong", "Not what I asked", "Better text"):
        assert shown in voice
    flags = re.search(r'data-feedback="([^"]*)"', page)[1].split()
    assert {"any", "negative", "thumbs_down", "text", "user_correction"} <= set(flags)


@pytest.mark.django_db
def test_feedback_on_every_reply_costs_no_query(client, moderator):
    replies = [f"Reply {i} with *some* Markdown." for i in range(6)]
    bare = make_conversation(replies=replies, external_id="bare")
    with_feedback = make_conversation(replies=replies, external_id="with-feedback")
    for turn in with_feedback.turns.filter(role=TurnRole.ASSISTANT):
        add_feedback(turn, kind="thumbs_down", text="no")
        add_feedback(turn, kind="rating", rating=2)
    client.force_login(moderator)
    counts = []
    for conversation in (bare, with_feedback):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("annotations:review", args=[conversation.pk]))
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert response.content.decode().count('class="uv-event') == 12
