"""Native FeedbackHub JSONL: one conversation per line, as specified in docs/import-format.md and
docs/schemas/feedbackhub-session.schema.json. Records are validated by :func:`normalise` directly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sessions.imports.base import Item, Parsed, Rejected, jsonl_records, rejected
from sessions.imports.errors import RecordError
from sessions.imports.normalise import content_hash, normalise
from sessions.imports.reader import ImportFile

NAME = "native"


def sniff(first: Any) -> bool:
    return isinstance(first, dict) and isinstance(first.get("turns"), list)


def iter_parsed(f: ImportFile, *, default_source: str) -> Iterator[Parsed | Rejected]:
    """Parse each line and tell its key and hash; :func:`finish` validates it."""
    for entry in jsonl_records(f):
        if isinstance(entry, Rejected):
            yield entry
            continue
        lineno, line, rec = entry
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
