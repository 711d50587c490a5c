"""What every format module yields, and small helpers they share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import orjson

from sessions.imports.errors import FileError, RecordError
from sessions.imports.normalise import Conversation
from sessions.imports.reader import ImportFile, human_bytes, utf8_error

EXCERPT_BYTES = 300


class Rejected:
    """A record that cannot be imported: where it is (1-based line), which field, why, and its first bytes."""

    __slots__ = ("line", "field", "reason", "excerpt")

    def __init__(self, line: int, field: str, reason: str, excerpt: bytes | str = b"") -> None:
        self.line = line
        self.field = field
        self.reason = reason
        if isinstance(excerpt, bytes):
            excerpt = excerpt[:EXCERPT_BYTES].decode("utf-8", "replace")
        self.excerpt = excerpt[:EXCERPT_BYTES]

    def __repr__(self) -> str:
        return f"Rejected(line={self.line}, field={self.field!r}, reason={self.reason!r})"


Item = Conversation | Rejected


class Parsed:
    """A record parsed but not yet validated: its key (when the format can tell it cheaply) and content hash, so
    the pipeline can skip records already stored unchanged before paying for their validation."""

    __slots__ = ("line", "key", "content_hash", "record", "raw")

    def __init__(self, line: int, key: tuple[str, str] | None, content_hash: str, record: Any, raw: bytes) -> None:
        self.line = line
        self.key = key
        self.content_hash = content_hash
        self.record = record
        self.raw = raw


class Format(Protocol):
    NAME: str

    def sniff(self, first: Any) -> bool: ...

    def iter_items(self, f: ImportFile, *, default_source: str) -> Iterator[Item]: ...


def too_long(f: ImportFile, line: int) -> Rejected:
    return Rejected(line, "", f"line longer than {human_bytes(f.max_line_bytes)} (IMPORT_MAX_LINE_BYTES); skipped", b"")


def parse_json(data: bytes, line: int) -> tuple[Any, Rejected | None]:
    """Parse one JSON record; on failure say why (invalid UTF-8 is named with its byte position)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = utf8_error(data) or f"invalid JSON: {exc}"
        return None, Rejected(line, "", reason, data)
    if b"\\u0000" in data:
        value = scrub_nul(value)
    return value, None


def jsonl_records(f: ImportFile) -> Iterator[tuple[int, bytes, Any] | Rejected]:
    """Each line of a JSONL file as ``(line number, raw line, parsed JSON)``, or :class:`Rejected` for a bad line.

    Raises FileError for a JSON array, which JSONL formats don't take.
    """
    if f.is_json_array():
        raise FileError(f"{f.name}: line 1: a JSON array; this format has one JSON object per line (JSONL)")
    for lineno, line in f.lines():
        if line is None:
            yield too_long(f, lineno)
            continue
        rec, bad = parse_json(line, lineno)
        yield (lineno, line, rec) if bad is None else bad


def scrub_nul(value: Any) -> Any:
    """Replace NUL characters (which PostgreSQL text cannot hold) by U+FFFD, everywhere in a parsed record."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [scrub_nul(v) for v in value]
    if isinstance(value, dict):
        return {scrub_nul(k): scrub_nul(v) for k, v in value.items()}
    return value


def rejected(err: RecordError, line: int, excerpt: bytes | str) -> Rejected:
    return Rejected(line, err.field, err.reason, excerpt)
