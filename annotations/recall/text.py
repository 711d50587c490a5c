"""The text a feedback item embeds: what the feedback says first, then the exchange it is about, all bounded.

all-MiniLM-L6-v2 reads at most 256 word pieces (roughly 1,000 characters of English); anything beyond is cut by the
model. So the parts that say what was wrong (tags, comment, highlighted span, suggested replacement, the end user's
words) come first and the surrounding exchange (the user's query, then the reply around the span) after, each part
cut at a word boundary to its own budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

#: Per-part budgets in characters.
FEEDBACK_CHARS = 600
SPAN_CHARS = 300
QUERY_CHARS = 400
REPLY_CHARS = 600
#: Hard cap on the whole text (well past what the model reads; keeps rows small).
MAX_TEXT_CHARS = 2_500
ELLIPSIS = "…"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def clip(text: str, limit: int) -> str:
    """``text`` with whitespace runs collapsed, cut to at most ``limit`` characters at a word boundary (with an
    ellipsis when cut)."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + ELLIPSIS


def window(text: str, start: int | None, end: int | None, limit: int) -> str:
    """Up to ``limit`` characters of ``text`` around ``text[start:end]`` (the start of the text when no span)."""
    text = text or ""
    if start is None or end is None or len(text) <= limit:
        return clip(text, limit)
    start, end = max(0, start), min(len(text), end)
    room = max(0, limit - (end - start))
    lo = max(0, start - room // 2)
    hi = min(len(text), lo + max(limit, end - start))
    lo = max(0, hi - limit)
    piece = text[lo:hi]
    # Do not start or end in the middle of a word.
    if lo > 0 and " " in piece[:40]:
        piece = piece[piece.index(" ") + 1 :]
    if hi < len(text) and " " in piece[-40:]:
        piece = piece[: piece.rindex(" ")]
    return (ELLIPSIS if lo > 0 else "") + clip(piece, limit) + (ELLIPSIS if hi < len(text) else "")


def _join(parts: Iterable[tuple[str, str]]) -> str:
    text = "\n".join(f"{label}: {value}" for label, value in parts if value)
    return text[:MAX_TEXT_CHARS]


def annotation_text(
    *,
    tag_names: Iterable[str],
    body: str,
    exact: str,
    replacement: str,
    is_suggestion: bool,
    query: str,
    reply: str,
    start: int | None,
    end: int | None,
) -> str:
    """Text of a reviewer annotation: its tags, comment, highlighted span, replacement, then the exchange."""
    return _join(
        [
            ("Tags", ", ".join(tag_names)),
            ("Comment", clip(body, FEEDBACK_CHARS)),
            ("Highlighted", clip(exact, SPAN_CHARS)),
            ("Suggested replacement", clip(replacement, SPAN_CHARS) if is_suggestion else ""),
            ("User asked", clip(query, QUERY_CHARS)),
            ("Reply", window(reply, start, end, REPLY_CHARS)),
        ]
    )


def feedback_event_text(
    *,
    kind_label: str,
    rating: int | None,
    categories: Iterable[str],
    text: str,
    correction: str,
    query: str,
    reply: str,
) -> str:
    """Text of an end user's feedback: its kind (and rating, categories), words and correction, then the exchange."""
    signal = kind_label + (f" {rating}" if rating is not None else "")
    return _join(
        [
            ("Feedback", signal),
            ("Categories", ", ".join(categories)),
            ("Comment", clip(text, FEEDBACK_CHARS)),
            ("User correction", clip(correction, FEEDBACK_CHARS)),
            ("User asked", clip(query, QUERY_CHARS)),
            ("Reply", clip(reply, REPLY_CHARS)),
        ]
    )


def exchange_text(*, query: str | None, reply: str) -> str:
    """Text a model reply is searched by (the review panel): the user's query before it and the reply, labelled
    like the items' own texts."""
    parts = [f"User asked: {clip(query, QUERY_CHARS)}" if query else "", f"Reply: {clip(reply, REPLY_CHARS)}"]
    return "\n".join(part for part in parts if part)
