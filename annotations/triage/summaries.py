"""What a moderator reads of a cluster before opening it: a title sentence and a few snippets, from the texts of
the members nearest the centroid (nearest first), as plain strings.

A feedback item's text is labelled parts, what the feedback says first ("Comment: …", "User correction: …") and the
exchange after ("User asked: …", "Reply: …"; ``annotations.recall.text``). The **gist** of a member is the words of
the feedback itself, or, for a bare signal (a thumbs down, a tag without a comment), the signal and what it was
about. The **title** is the first sentence of the gist of the nearest member that has words of its own (the nearest
member's gist when none has), trimmed; the **snippets** are the distinct gists of the nearest members that do not
merely repeat the title, trimmed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from annotations.recall.text import clip

TITLE_CHARS = 120
SNIPPET_CHARS = 160
#: Snippets stored per cluster (and shown by the queue), none merely repeating the title.
SNIPPETS = 3

#: Labels of the parts that are the feedback's own words, in the order they are preferred.
_SAID = ("Comment", "User correction", "Suggested replacement")
_PART = re.compile(
    r"^(Tags|Comment|Highlighted|Suggested replacement|User asked|Reply|Feedback|Categories|"
    r"User correction): ?(.*)$"
)
#: A sentence ends at . ! ? or … (closing quotes and brackets kept) followed by white space.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)")
#: Shorter first "sentences" are abbreviations ("e.g.", "No.") more often than sentences: read on to the next end.
_MIN_SENTENCE = 12


def parts(text: str) -> dict[str, str]:
    """The labelled parts of an item's text; a text without labels is one part under ""."""
    out: dict[str, str] = {}
    label = ""
    for line in (text or "").splitlines():
        match = _PART.match(line)
        if match:
            label = match.group(1)
            out[label] = match.group(2).strip()
        elif line.strip():
            out[label] = f"{out[label]} {line.strip()}" if out.get(label) else line.strip()
    return out


def plain(text: str) -> str:
    """The text without its part labels, nor the bare signal ("Thumbs down"): what the keywords are counted over
    (labels such as "User asked" and "Comment", and the signals, are in most members' texts and would otherwise come
    out as keywords)."""
    return " ".join(value for label, value in parts(text).items() if label != "Feedback")


def said(text: str) -> str:
    """The feedback's own words (a comment, a correction, a suggested replacement), or ""."""
    p = parts(text)
    if "" in p and len(p) == 1:
        return p[""]
    for label in _SAID:
        if p.get(label):
            return p[label] if label == "Comment" else f"{label}: {p[label]}"
    return ""


def gist(text: str) -> str:
    """What a member says, in one line: its own words, or the signal and what it was about."""
    words = said(text)
    if words:
        return " ".join(words.split())
    p = parts(text)
    signal = p.get("Feedback") or p.get("Tags") or p.get("Categories") or "Feedback"
    about = p.get("Highlighted") or p.get("User asked") or p.get("Reply") or ""
    return " ".join((f"{signal} on “{first_sentence(about, SNIPPET_CHARS)}”" if about else signal).split())


def first_sentence(text: str, limit: int = TITLE_CHARS) -> str:
    """The first sentence of ``text`` (white space collapsed), cut at a word boundary to ``limit`` characters."""
    text = " ".join((text or "").split())
    for match in _SENTENCE_END.finditer(text):
        if match.end() >= _MIN_SENTENCE:
            text = text[: match.end()]
            break
    return clip(text, limit)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def title(texts: Sequence[str]) -> str:
    """The title sentence of a cluster whose member texts, nearest the centroid first, are ``texts`` ("" if none)."""
    for text in texts:
        words = said(text)
        if words.strip():
            return _capitalised(first_sentence(words))
    return _capitalised(first_sentence(gist(texts[0]))) if texts else ""


def _key(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".!?… ")


def snippets(texts: Sequence[str], *, title: str = "", k: int = SNIPPETS) -> list[str]:
    """Up to ``k`` distinct gists of ``texts`` (nearest first), each trimmed to SNIPPET_CHARS, leaving out those
    that merely repeat ``title`` (the queue prints them as they are stored)."""
    out: list[str] = []
    seen: set[str] = {_key(title)} if title else set()
    for text in texts:
        snippet = clip(gist(text), SNIPPET_CHARS)
        key = _key(snippet)
        if key and key not in seen:
            seen.add(key)
            out.append(snippet)
            if len(out) == k:
                break
    return out
