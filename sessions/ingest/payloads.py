"""The ingest API's request bodies: a JSON envelope or NDJSON, decoded into records, with the field of any problem.

``{"source": "app", "conversations": [...]}`` (``source`` optional), or ``application/x-ndjson`` with one record
per line; the same for ``{"events": [...]}``; a feedback body may also be one event object on its own.
"""

from __future__ import annotations

from typing import Any

import orjson

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines")


class BadPayload(Exception):
    def __init__(self, field: str | None, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


def _loads(raw: bytes, where: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadPayload(None, f"{where}is not valid JSON: {exc}.") from None


def is_ndjson(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in NDJSON_TYPES


def _ndjson(body: bytes) -> list[Any]:
    records = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            records.append(_loads(line, f"line {lineno} "))
    return records


def _source(envelope: dict) -> str | None:
    source = envelope.get("source")
    if source is None:
        return None
    if not isinstance(source, str) or not source or len(source) > 100:
        raise BadPayload("source", "source: expected the name of the app (a string of up to 100 characters).")
    return source


def batch(body: bytes, content_type: str, *, key: str, max_records: int, single_allowed: bool = False,
          ) -> tuple[list[Any], str | None, bool]:
    """``(records, envelope source, single)`` of a body holding records under ``key`` (or NDJSON lines; or, with
    ``single_allowed``, one record object on its own, then ``single`` is True)."""
    if not body.strip():
        raise BadPayload(None, f"The body is empty: send {{\"{key}\": [...]}} or NDJSON.")
    single = False
    source = None
    if is_ndjson(content_type):
        records = _ndjson(body)
    else:
        data = _loads(body, "The body ")
        if not isinstance(data, dict):
            raise BadPayload(None, f"The body must be a JSON object such as {{\"{key}\": [...]}}.")
        source = _source(data)
        if key in data or not single_allowed:
            unknown = sorted(set(data) - {key, "source"})
            if unknown:
                raise BadPayload(unknown[0], f"{unknown[0]}: unknown field (the envelope has {key} and source).")
            if key not in data:
                raise BadPayload(key, f"{key}: missing; send {{\"{key}\": [...]}}.")
            records = data[key]
            if not isinstance(records, list):
                raise BadPayload(key, f"{key}: expected an array.")
        else:
            records, single = [data], True
            source = None  # an event's own "source" is read with the event
    if not records:
        raise BadPayload(key, f"{key}: empty; send at least one.")
    if len(records) > max_records:
        raise BadPayload(key, f"{key}: {len(records)} in one request; at most {max_records}.", status=413)
    return records, source, single
