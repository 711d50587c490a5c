"""Anchoring: selector validation and Hypothesis-style re-anchoring (position, exact quote, fuzzy quote)."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from annotations import anchoring
from annotations.anchoring import Selector, SelectorError, anchor, describe, text_hash, validate

FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # woman, ZWJ, woman, ZWJ, girl: one grapheme, 5 code points
THUMBS = "\U0001f44d\U0001f3fd"  # thumbs up + skin tone modifier
E_ACUTE = "e\u0301"  # e + combining acute accent

# Base texts for the strict properties never repeat a character, so "the same text" is well defined: no substring
# occurs twice and no two different edits give the same result (with repeated characters, deleting one "a" of "aa"
# or the other is the same edit, and no anchoring can tell them apart). Edits insert characters that never occur in a
# base text. Letters, CJK, emoji and combining marks make the code-point arithmetic non-trivial.
BASE_POOL = (
    [chr(c) for c in range(ord("a"), ord("z") + 1)]
    + [chr(c) for c in range(0x4E00, 0x4E00 + 200)]
    + [chr(c) for c in range(0x1F600, 0x1F650)]
    + [chr(c) for c in range(0x0300, 0x0340)]
    + [" ", ".", ","]
)
EDIT_CHARS = "QRSTUVWXYZ0123456789" + "\u200d\U0001f9d1"


def apply_edit(text: str, a: int, b: int, replacement: str) -> str:
    return text[:a] + replacement + text[b:]


@st.composite
def distinct_chars_text(draw) -> str:
    return "".join(draw(st.lists(st.sampled_from(BASE_POOL), min_size=2, max_size=120, unique=True)))


@st.composite
def text_and_span(draw, texts=None):
    text = draw(texts if texts is not None else distinct_chars_text())
    start = draw(st.integers(0, len(text) - 1))
    end = draw(st.integers(start + 1, len(text)))
    return text, start, end


# --- validation ---------------------------------------------------------------------------------------------------


def test_validate_accepts_a_matching_span_and_recomputes_context():
    text = f"Hello {FAMILY} world, caf{E_ACUTE} and {THUMBS}!"
    start = text.index(FAMILY)
    sel = validate(text, start=start, end=start + len(FAMILY), exact=FAMILY, text_sha256=text_hash(text))
    assert sel.exact == FAMILY and sel.prefix == "Hello " and sel.suffix.startswith(" world")
    assert (sel.start, sel.end) == (6, 11)  # code points, not UTF-16 units (which would be 6..14)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": 0, "end": 5, "exact": "Hello", "text_sha256": "0" * 64}, "text_hash"),
        ({"start": 3, "end": 3, "exact": "", "text_sha256": None}, "start"),
        ({"start": 0, "end": 500, "exact": "Hello", "text_sha256": None}, "start"),
        ({"start": -1, "end": 4, "exact": "Hello", "text_sha256": None}, "start"),
        ({"start": 0, "end": 5, "exact": "Hellp", "text_sha256": None}, "exact"),
        ({"start": 5, "end": 6, "exact": " ", "text_sha256": None}, "exact"),
    ],
)
def test_validate_rejects_a_selector_that_does_not_fit_the_text(kwargs, field):
    text = "Hello world"
    if kwargs["text_sha256"] is None:
        kwargs = {**kwargs, "text_sha256": text_hash(text)}
    with pytest.raises(SelectorError) as err:
        validate(text, **kwargs)
    assert err.value.field == field


def test_utf16_offsets_are_rejected_for_astral_characters():
    text = f"{FAMILY} ok"
    # A client that sent UTF-16 offsets would say 0..8 for the family; in code points that runs past it.
    with pytest.raises(SelectorError):
        validate(text, start=0, end=8, exact=FAMILY, text_sha256=text_hash(text))


# --- strategies, by example -----------------------------------------------------------------------------------------


def test_unchanged_text_anchors_by_position():
    text = "The capital of Australia is Sydney, which hosts parliament."
    sel = describe(text, text.index("Sydney"), text.index("Sydney") + 6)
    assert anchor(text, sel) == anchoring.Anchor(sel.start, sel.end, "position")


def test_text_inserted_before_moves_the_anchor_by_quote():
    text = "The capital of Australia is Sydney, which hosts parliament."
    sel = describe(text, text.index("Sydney"), text.index("Sydney") + 6)
    new = "Note: " + text
    found = anchor(new, sel)
    assert found is not None and found.strategy == "quote" and new[found.start : found.end] == "Sydney"
    assert found.start == sel.start + 6


def test_repeated_quote_is_disambiguated_by_context():
    text = "red apple, green apple, blue apple"
    sel = describe(text, text.rindex("apple"), text.rindex("apple") + 5)
    new = "a " + text
    found = anchor(new, sel)
    assert found is not None and (found.start, found.end) == (sel.start + 2, sel.end + 2)


def test_small_correction_inside_a_long_span_reanchors_fuzzily():
    text = "Intro. The Eiffel Tower was completed in 1899 for the World's Fair in Paris. Outro text here."
    quote = "The Eiffel Tower was completed in 1899 for the World's Fair"
    sel = describe(text, text.index(quote), text.index(quote) + len(quote))
    new = text.replace("1899", "1889")
    found = anchor(new, sel)
    assert found is not None and found.strategy == "fuzzy"
    assert new[found.start : found.end] == quote.replace("1899", "1889")


def test_rewritten_span_is_orphaned_not_moved_to_similar_text():
    text = "Paris is in France. Berlin is in Germany. Madrid is in Spain."
    sel = describe(text, text.index("Berlin is in Germany"), text.index("Berlin is in Germany") + 20)
    new = text.replace("Berlin is in Germany", "Rome is the capital of Italy")
    assert anchor(new, sel) is None


def test_deleted_span_is_orphaned_even_when_the_quote_occurs_elsewhere():
    text = "A red apple tastes sweet and crisp. A green apple tastes sour and sharp, unlike the rest of the bowl."
    start = text.index("apple", text.index("green"))
    sel = describe(text, start, start + 5)
    new = text.replace("green apple", "green one")
    # "apple" still occurs once, but with neither side of the old context: orphaned, not moved.
    assert "apple" in new and anchor(new, sel) is None


def test_emoji_and_zwj_sequences_keep_code_point_offsets():
    text = f"{THUMBS} Good {FAMILY} family caf{E_ACUTE}"
    start = text.index(FAMILY)
    sel = describe(text, start, start + len(FAMILY) + 7)
    new = f"{FAMILY}{THUMBS} " + text
    found = anchor(new, sel)
    assert found is not None and new[found.start : found.end] == sel.exact
    assert found.start == start + len(FAMILY) + len(THUMBS) + 1


# --- properties ---------------------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(data=st.data(), span=text_and_span())
def test_edits_outside_a_span_keep_it_on_the_same_characters(data, span):
    text, start, end = span
    sel = describe(text, start, end)
    before = data.draw(st.booleans(), label="edit before the span")
    if before:
        a = data.draw(st.integers(0, start), label="a")
        b = data.draw(st.integers(a, start), label="b")
    else:
        a = data.draw(st.integers(end, len(text)), label="a")
        b = data.draw(st.integers(a, len(text)), label="b")
    replacement = data.draw(st.text(alphabet=EDIT_CHARS, max_size=12), label="replacement")
    new = apply_edit(text, a, b, replacement)
    shift = len(replacement) - (b - a) if before else 0

    found = anchor(new, sel)

    assert found is not None, "an edit outside the span orphaned it"
    assert (found.start, found.end) == (start + shift, end + shift)
    assert new[found.start : found.end] == sel.exact


@settings(max_examples=400, deadline=None)
@given(data=st.data(), span=text_and_span())
def test_edits_inside_a_span_reanchor_on_it_or_orphan_it_never_elsewhere(data, span):
    text, start, end = span
    sel = describe(text, start, end)
    a = data.draw(st.integers(start, end), label="a")
    b = data.draw(st.integers(a, end), label="b")
    replacement = data.draw(st.text(alphabet=EDIT_CHARS, max_size=12), label="replacement")
    assume(not (a == b and a in (start, end)))  # an insertion at a boundary is an edit outside the span
    new = apply_edit(text, a, b, replacement)
    assume(new != text)
    image = (start, end - (b - a) + len(replacement))  # where the edited span's characters now are

    found = anchor(new, sel)

    if found is None:
        return
    assert image[0] < image[1], "the whole span was deleted, yet it was anchored"
    assert found.start < image[1] and found.end > image[0], f"anchored on other text: {found} vs {image}"
    if found.strategy in ("position", "quote"):
        assert new[found.start : found.end] == sel.exact


@settings(max_examples=400, deadline=None)
@example(text="abab", start=2, end=4, a=0, b=4, replacement="ab")
@given(
    text=st.text(min_size=1, max_size=60),
    start=st.integers(0, 59),
    end=st.integers(1, 60),
    a=st.integers(0, 60),
    b=st.integers(0, 60),
    replacement=st.text(max_size=10),
)
def test_any_text_any_edit_anchor_is_in_bounds_and_exact_strategies_quote_exactly(text, start, end, a, b, replacement):
    assume(start < end <= len(text) and a <= b <= len(text))
    sel = describe(text, start, end)
    new = apply_edit(text, a, b, replacement)
    found = anchor(new, sel)
    if found is None:
        return
    assert 0 <= found.start < found.end <= len(new)
    if found.strategy in ("position", "quote"):
        assert new[found.start : found.end] == sel.exact


def test_a_selector_for_the_unchanged_text_always_anchors_in_place():
    text = f"Start {FAMILY} middle {THUMBS} end"
    for start in range(len(text)):
        for end in range(start + 1, len(text) + 1):
            sel = describe(text, start, end)
            assert anchor(text, sel) == anchoring.Anchor(start, end, "position")


def test_selector_is_a_plain_value():
    assert Selector("a", "", "", 0, 1) == Selector("a", "", "", 0, 1)
