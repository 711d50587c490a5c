"""Native FeedbackHub JSONL: one conversation per line, as specified in docs/import-format.md and
docs/schemas/feedbackhub-session.schema.json. Records are validated by :func:`normalise` directly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sessions.importers.base import Item, Parsed, Rejected, parse_json, rejected, too_long
from sessions.importers.errors import FileError, RecordError
from sessions.importers.normalise import content_hash, normalise
from sessions.importers.reader import ImportFile

NAME = "native"


def sniff(first: Any) -> bool:
    return isinstance(first, dict) and isinstance(first.get("turns"), list)


def iter_parsed(f: ImportFile, *, default_source: str) -> Iterator[Parsed | Rejected]:
    """Parse each line and tell its key and hash; :func:`finish` validates it."""
    if f.is_json_array():
        raise FileError(f"{f.name}: line 1: a JSON array; this format has one JSON object per line (JSONL)")
    for lineno, line in f.lines():
        if line is None:
            yield too_long(f, lineno)
            continue
        rec, bad = parse_json(line, lineno)
        if bad is not None:
            yield bad
            continue
        key = None
        if rec.__class__ is dict:
            rid, source = rec.get("id"), rec.get("source") or default_source
            if (rid.__class__ is str and rid) or rid.__class__ is int:
                key = (source, str(rid)) if source.__class__ is str else None
        yield Parsed(lineno, key, content_hash(NAME, line), rec, line)


def finish(parsed: Parsed, *, default_source: str) -> Item:
    try:
        return normalise(
            parsed.record, default_source=default_source, line=parsed.line, content_hash=parsed.content_hash
        )
    except RecordError as exc:
        return rejected(exc, parsed.line, parsed.raw)


def iter_items(f: ImportFile, *, default_source: str) -> Iterator[Item]:
    for item in iter_parsed(f, default_source=default_source):
        yield item if isinstance(item, Rejected) else finish(item, default_source=default_source)
