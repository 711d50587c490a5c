"""Native FeedbackHub JSONL: one conversation per line, as specified in docs/import-format.md and
docs/schemas/feedbackhub-session.schema.json. Records are validated by :func:`normalise` directly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sessions.importers.base import Item, parse_json, rejected, too_long
from sessions.importers.errors import RecordError
from sessions.importers.normalise import content_hash, normalise
from sessions.importers.reader import ImportFile

NAME = "native"


def sniff(first: Any) -> bool:
    return isinstance(first, dict) and isinstance(first.get("turns"), list)


def iter_items(f: ImportFile, *, default_source: str) -> Iterator[Item]:
    for lineno, line in f.lines():
        if line is None:
            yield too_long(f, lineno)
            continue
        rec, bad = parse_json(line, lineno)
        if bad is not None:
            yield bad
            continue
        try:
            yield normalise(rec, default_source=default_source, line=lineno, content_hash=content_hash(NAME, line))
        except RecordError as exc:
            yield rejected(exc, lineno, line)
