"""Server-side anchoring of text selectors on a reply, the way Hypothesis re-anchors annotations.

A span is stored as a W3C Web Annotation TextQuoteSelector (``exact``, ``prefix``, ``suffix``) plus a
TextPositionSelector (``start``, ``end``) counted in Unicode code points (Python ``str`` indices), together with the
sha256 of the reply text it was made on. Everything here works on code points; the browser converts from UTF-16.

``anchor`` places a selector on a (possibly changed) text with three strategies, in order:

1. **position**: the text at the stored offsets still equals the quote;
2. **exact quote**: every occurrence of the quote, kept only when at least one side of its stored context is intact
   there, the best (both sides, then nearest to the old position) wins;
3. **fuzzy quote**: diff-match-patch's bitap ``match_main`` near the old position, kept only when the found text is
   close to the quote *and* both sides of its context are close to the stored context.

When none of them fits, the result is ``None``: the annotation is orphaned rather than shown on the wrong text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from diff_match_patch import diff_match_patch

#: Code points of context kept on each side of a quote (Hypothesis keeps 32).
CONTEXT_CHARS = 32
#: Quotes shorter than this are never fuzzy-matched: too little evidence to tell a changed quote from other text.
FUZZY_MIN_QUOTE = 6
#: How close (1 - edit distance / length) the fuzzily found text must be to the stored quote.
FUZZY_MIN_QUOTE_SIMILARITY = 0.75
#: How close each side of the found text's context must be to the stored context.
FUZZY_MIN_CONTEXT_SIMILARITY = 0.5
#: Hard cap on the length of a quote (code points) so selectors stay small; the whole reply has no span.
MAX_QUOTE_CHARS = 20_000


class SelectorError(ValueError):
    """A selector that does not describe the text it claims to describe. ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Selector:
    """A span of a text: quote with context and code-point offsets."""

    exact: str
    prefix: str
    suffix: str
    start: int
    end: int


@dataclass(frozen=True)
class Anchor:
    """Where a selector landed on a text and which strategy placed it."""

    start: int
    end: int
    strategy: str  # "position" | "quote" | "fuzzy"


def text_hash(text: str) -> str:
    """sha256 (hex) of the text's UTF-8 bytes: identifies the exact version of a reply an annotation was made on."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def describe(text: str, start: int, end: int) -> Selector:
    """The selector for ``text[start:end]`` with its context. Precondition: ``0 <= start < end <= len(text)``."""
    return Selector(
        exact=text[start:end],
        prefix=text[max(0, start - CONTEXT_CHARS) : start],
        suffix=text[end : end + CONTEXT_CHARS],
        start=start,
        end=end,
    )


def validate(text: str, *, start: int, end: int, exact: str, text_sha256: str) -> Selector:
    """Check a selector sent by a client against the current text and return the server's own description of it.

    Raises ``SelectorError`` when the text changed since the client read it (hash), when the offsets are out of range
    or empty, or when the quote is not exactly the text at those offsets. Prefix and suffix are recomputed here, never
    taken from the client.
    """
    if text_sha256 != text_hash(text):
        raise SelectorError("text_hash", "the reply text changed since the page was loaded; reload and select again")
    if not (0 <= start < end <= len(text)):
        raise SelectorError("start", f"the span {start}..{end} is not inside the reply (0..{len(text)} code points)")
    if end - start > MAX_QUOTE_CHARS:
        raise SelectorError("end", f"a span may be at most {MAX_QUOTE_CHARS} code points long")
    if text[start:end] != exact:
        raise SelectorError("exact", "the quoted text is not the text at the given code-point offsets")
    if not exact.strip():
        raise SelectorError("exact", "select some text, not only white space")
    return describe(text, start, end)


def _prefix_intact(text: str, at: int, prefix: str) -> bool:
    """The stored prefix is exactly the text before ``at``; a prefix cut short by the start of the text must be too."""
    if not prefix:
        return at == 0
    if text[max(0, at - len(prefix)) : at] != prefix:
        return False
    return len(prefix) == CONTEXT_CHARS or at - len(prefix) == 0


def _suffix_intact(text: str, at: int, suffix: str) -> bool:
    if not suffix:
        return at == len(text)
    if text[at : at + len(suffix)] != suffix:
        return False
    return len(suffix) == CONTEXT_CHARS or at + len(suffix) == len(text)


def _similarity(dmp: diff_match_patch, a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    distance = dmp.diff_levenshtein(dmp.diff_main(a, b, False))
    return 1.0 - distance / max(len(a), len(b))


def _by_quote(text: str, sel: Selector) -> Anchor | None:
    best: tuple[int, int, int] | None = None  # (sides intact, -distance, start)
    n = len(sel.exact)
    at = text.find(sel.exact)
    while at != -1:
        sides = int(_prefix_intact(text, at, sel.prefix)) + int(_suffix_intact(text, at + n, sel.suffix))
        if sides:
            key = (sides, -abs(at - sel.start), at)
            if best is None or key[:2] > best[:2]:
                best = key
        at = text.find(sel.exact, at + 1)
    return Anchor(best[2], best[2] + n, "quote") if best else None


def _mapped_end(dmp: diff_match_patch, quote: str, window: str) -> int:
    """Length of the part of ``window`` (which starts where ``quote`` was found) that corresponds to ``quote``."""
    consumed_a = consumed_b = end_b = 0
    for op, chunk in dmp.diff_main(quote, window, False):
        if op == 0:
            consumed_a += len(chunk)
            consumed_b += len(chunk)
            end_b = consumed_b
        elif op == -1:
            consumed_a += len(chunk)
            end_b = consumed_b
        else:
            consumed_b += len(chunk)
        if consumed_a >= len(quote):
            break
    return end_b


def _by_fuzzy(text: str, sel: Selector) -> Anchor | None:
    n = len(sel.exact)
    if n < FUZZY_MIN_QUOTE or not text:
        return None
    dmp = diff_match_patch()
    dmp.Match_Threshold = 0.35
    dmp.Match_Distance = 1000
    bits = dmp.Match_MaxBits
    expected = min(max(sel.start, 0), len(text))
    # Bitap handles at most Match_MaxBits characters: match the quote's head, then map the whole quote from there.
    head = sel.exact[:bits]
    found = dmp.match_main(text, head, expected)
    if found == -1:
        return None
    window = text[found : found + n + max(n // 2, 8)]
    length = _mapped_end(dmp, sel.exact, window)
    if length <= 0:
        return None
    start, end = found, found + length
    if _similarity(dmp, sel.exact, text[start:end]) < FUZZY_MIN_QUOTE_SIMILARITY:
        return None
    # Both sides of the context must still look like what surrounded the quote: that is what tells an edited quote
    # in its old place from similar text elsewhere.
    before = text[max(0, start - len(sel.prefix)) : start]
    after = text[end : end + len(sel.suffix)]
    if _similarity(dmp, sel.prefix, before) < FUZZY_MIN_CONTEXT_SIMILARITY:
        return None
    if _similarity(dmp, sel.suffix, after) < FUZZY_MIN_CONTEXT_SIMILARITY:
        return None
    return Anchor(start, end, "fuzzy")


def anchor(text: str, sel: Selector) -> Anchor | None:
    """Place ``sel`` on ``text`` (position, then exact quote, then fuzzy quote); ``None`` means orphaned."""
    if not sel.exact:
        return None
    if 0 <= sel.start < sel.end <= len(text) and text[sel.start : sel.end] == sel.exact:
        # Even at the old offsets the context must not contradict the quote being the same text.
        if _prefix_intact(text, sel.start, sel.prefix) or _suffix_intact(text, sel.end, sel.suffix):
            return Anchor(sel.start, sel.end, "position")
    found = _by_quote(text, sel)
    if found is not None:
        return found
    return _by_fuzzy(text, sel)
