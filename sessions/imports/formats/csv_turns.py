"""CSV, one row per turn, with a header row. Columns are documented in docs/import-format.md.

Rows of one conversation must be adjacent (sort the file by ``conversation_id`` first): a conversation ends where
the ``conversation_id`` changes, so the file streams with one conversation in memory. A conversation id that comes
back after other conversations (within the last ``RECENT_IDS`` conversations) is rejected rather than half-replacing
the earlier rows. Within a conversation, ``position`` (or ``turn_index``) orders the turns; without it the row
order is the turn order. Several rows with the same position are one turn with several feedback events.
Conversation-level columns (source, user_id, user_role, environment, model_version, app_version, started_at,
ended_at, metadata) are taken from the first row of the conversation that has them. Columns not listed are kept in
the turn's metadata.
"""

from __future__ import annotations

import csv
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import orjson

from sessions.imports.base import Item, Rejected
from sessions.imports.errors import FileError, RecordError
from sessions.imports.normalise import content_hash, normalise
from sessions.imports.reader import ImportFile, human_bytes

NAME = "csv"
RECENT_IDS = 10_000
ALIASES = {"session_id": "conversation_id", "turn_index": "position", "feedback_comment": "feedback_text"}
CONVERSATION_COLUMNS = (
    "source", "user_id", "user_role", "environment", "app_version", "started_at", "ended_at", "metadata",
)  # fmt: skip
TURN_COLUMNS = (
    "conversation_id", "position", "role", "content", "created_at", "model_version", "latency_ms", "prompt_tokens",
    "completion_tokens", "confidence", "system_prompt", "retrieved_documents", "tool_calls", "turn_id",
    "turn_metadata",
)  # fmt: skip
FEEDBACK_COLUMNS = (
    "feedback_id", "feedback_type", "rating", "feedback_categories", "feedback_text", "correction",
    "feedback_created_at", "feedback_metadata",
)  # fmt: skip
KNOWN = frozenset(CONVERSATION_COLUMNS + TURN_COLUMNS + FEEDBACK_COLUMNS)


def sniff(first: Any) -> bool:
    """``first`` is the header line as text."""
    if not isinstance(first, str):
        return False
    names = {ALIASES.get(n.strip().strip('"').lower(), n.strip().strip('"').lower()) for n in first.split(",")}
    return {"conversation_id", "role"} <= names


class _Row:
    __slots__ = ("line", "values")

    def __init__(self, line: int, values: dict[str, str]) -> None:
        self.line = line
        self.values = values


def _text_lines(f: ImportFile, bad_lines: dict[int, str]) -> Iterator[str]:
    """Decoded physical lines for the csv module; undecodable or over-long lines are noted in ``bad_lines``."""
    for lineno, data in f.lines(keep_ends=True):
        if data is None:
            bad_lines[lineno] = f"line longer than {human_bytes(f.max_line_bytes)} (IMPORT_MAX_LINE_BYTES)"
            yield "\n"
            continue
        try:
            yield data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = data[exc.start : exc.end].hex(" ")
            bad_lines[lineno] = (
                f"invalid UTF-8 at byte {exc.start + 1} of the line (bytes {bad}); the file must be UTF-8"
            )
            yield data.decode("utf-8", "replace")


def iter_items(f: ImportFile, *, default_source: str) -> Iterator[Item]:  # noqa: C901
    csv.field_size_limit(max(csv.field_size_limit(), f.max_line_bytes))
    bad_lines: dict[int, str] = {}
    reader = csv.reader(_text_lines(f, bad_lines), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise FileError(f"{f.name}: line 1: the CSV header cannot be read ({exc})") from exc
    columns = [ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    missing = [c for c in ("conversation_id", "role") if c not in columns]
    if missing:
        raise FileError(
            f"{f.name}: line 1: the CSV header has no {' or '.join(missing)} column (found: {', '.join(columns)[:300]})"
        )
    if 1 in bad_lines:
        raise FileError(f"{f.name}: line 1: {bad_lines[1]}")
    width = len(columns)
    recent: OrderedDict[str, None] = OrderedDict()
    group: list[_Row] = []
    group_id: str | None = None
    group_bytes = 0
    group_bad: Rejected | None = None
    prev_line = reader.line_num

    def finish() -> Item | None:
        if group_id is None:
            return None
        if group_bad is not None:
            return group_bad
        return _conversation(group, columns, default_source)

    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = prev_line + 1
            prev_line = reader.line_num
            bad_row = Rejected(line, "", f"malformed CSV row: {exc}")
            if group_id is not None and group_bad is None:
                group_bad = bad_row  # the conversation being read loses a row: reject it whole
            elif group_id is None:
                yield bad_row
            continue
        first_line, prev_line = prev_line + 1, reader.line_num
        if not values:
            continue
        bad = next((bad_lines.pop(n) for n in range(first_line, prev_line + 1) if n in bad_lines), None)
        if len(values) != width and bad is None:
            bad = f"expected {width} columns as in the header, found {len(values)}"
        conv_id = values[columns.index("conversation_id")] if len(values) > columns.index("conversation_id") else ""
        if conv_id != group_id:
            item = finish()
            if item is not None:
                yield item
            group, group_id, group_bytes, group_bad = [], conv_id, 0, None
            if conv_id in recent:
                group_bad = Rejected(
                    first_line, "conversation_id",
                    f"conversation {conv_id[:80]!r} appeared earlier in the file: rows of one conversation must be "
                    "adjacent (sort the file by conversation_id)",
                )  # fmt: skip
            recent[conv_id] = None
            if len(recent) > RECENT_IDS:
                recent.popitem(last=False)
        if group_bad is not None:
            continue
        if bad is not None:
            group_bad = Rejected(first_line, "", bad, ",".join(values))
            continue
        if not conv_id:
            group_bad = Rejected(first_line, "conversation_id", "missing", ",".join(values))
            continue
        group_bytes += sum(len(v) for v in values)
        if group_bytes > f.max_line_bytes:
            group_bad = Rejected(
                group[0].line if group else first_line, "",
                f"conversation {conv_id[:80]!r} is larger than {human_bytes(f.max_line_bytes)} "
                "(IMPORT_MAX_LINE_BYTES)",
            )  # fmt: skip
            continue
        group.append(_Row(first_line, dict(zip(columns, values, strict=True))))
    item = finish()
    if item is not None:
        yield item


def _json_cell(row: _Row, column: str) -> Any:
    raw = row.values.get(column, "")
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _RowError(row, column, f"invalid JSON: {exc}") from None


class _RowError(Exception):
    def __init__(self, row: _Row, column: str, reason: str) -> None:
        self.row, self.column, self.reason = row, column, reason


def _number(row: _Row, column: str, cast: type) -> Any:
    raw = row.values.get(column, "").strip()
    if not raw:
        return None
    try:
        return cast(raw)
    except ValueError:
        what = "whole number" if cast is int else "number"
        raise _RowError(row, column, f"expected a {what}, got {raw[:40]!r}") from None


def _conversation(rows: list[_Row], columns: list[str], default_source: str) -> Item:
    first = rows[0]
    try:
        native, origins = _to_native(rows, columns)
    except _RowError as exc:
        return Rejected(exc.row.line, exc.column, exc.reason, ",".join(exc.row.values.values()))
    digest = content_hash(NAME, orjson.dumps(columns), orjson.dumps([r.values for r in rows]))
    try:
        conv = normalise(native, default_source=default_source, line=first.line, content_hash=digest)
    except RecordError as exc:
        line, field = first.line, exc.field
        if field.startswith("turns["):
            index, _, rest = field[6:].partition("]")
            if index.isdigit() and int(index) < len(origins):
                row = origins[int(index)]
                line = row.line
                field = _column_for(rest)
        elif field in ("user.id", "user.role"):
            field = "user_id" if field == "user.id" else "user_role"
        return Rejected(line, field, exc.reason, ",".join(first.values.values()))
    return conv


_FIELD_TO_COLUMN = {
    ".usage.prompt_tokens": "prompt_tokens", ".usage.completion_tokens": "completion_tokens",
    ".context.system_prompt": "system_prompt",
}  # fmt: skip


def _column_for(rest: str) -> str:
    if rest in _FIELD_TO_COLUMN:
        return _FIELD_TO_COLUMN[rest]
    if rest.startswith(".feedback["):
        sub = rest.partition("].")[2]
        return {"type": "feedback_type", "text": "feedback_text", "created_at": "feedback_created_at"}.get(
            sub, "feedback_categories" if sub.startswith("categories") else sub
        )
    if rest.startswith(".context.retrieved_documents"):
        return "retrieved_documents"
    if rest.startswith(".context.tool_calls"):
        return "tool_calls"
    return rest.lstrip(".")


def _to_native(rows: list[_Row], columns: list[str]) -> tuple[dict, list[_Row]]:
    has_position = "position" in columns
    if has_position:
        keyed = [(_number(r, "position", int), i, r) for i, r in enumerate(rows)]
        for pos, _, r in keyed:
            if pos is None:
                raise _RowError(r, "position", "missing (other rows of this conversation have one)")
        keyed.sort(key=lambda t: (t[0], t[1]))
    else:
        keyed = [(i, i, r) for i, r in enumerate(rows)]
    extra = [c for c in columns if c not in KNOWN]
    native: dict[str, Any] = {"id": rows[0].values["conversation_id"]}
    for r in rows:
        v = r.values
        for column in CONVERSATION_COLUMNS + ("model_version",):
            if column in native or not v.get(column, "").strip():
                continue
            if column == "metadata":
                meta = _json_cell(r, "metadata")
                if not isinstance(meta, dict):
                    raise _RowError(r, "metadata", "expected a JSON object")
                native["metadata"] = meta
            else:
                native[column] = v[column].strip()
    user = {"id": native.pop("user_id", None), "role": native.pop("user_role", None)}
    if user["id"] or user["role"]:
        native["user"] = user

    turns: list[dict] = []
    origins: list[_Row] = []
    last_pos: int | None = None
    for pos, _, r in keyed:
        v = r.values
        if has_position and pos == last_pos:
            turn = turns[-1]  # another feedback event on the same turn
        else:
            last_pos = pos
            turn = {"role": v.get("role", "").strip().lower(), "content": v.get("content", "")}
            created = v.get("created_at", "").strip()
            if created:
                turn["created_at"] = created
            if v.get("model_version", "").strip():
                turn["model_version"] = v["model_version"].strip()
            for column in ("latency_ms",):
                n = _number(r, column, int)
                if n is not None:
                    turn[column] = n
            usage = {c: _number(r, c, int) for c in ("prompt_tokens", "completion_tokens")}
            if any(x is not None for x in usage.values()):
                turn["usage"] = usage
            confidence = _number(r, "confidence", float)
            if confidence is not None:
                turn["confidence"] = confidence
            context: dict[str, Any] = {}
            if v.get("system_prompt"):
                context["system_prompt"] = v["system_prompt"]
            for column in ("retrieved_documents", "tool_calls"):
                value = _json_cell(r, column)
                if value is not None:
                    if not isinstance(value, list):
                        raise _RowError(r, column, "expected a JSON array")
                    context[column] = value
            if context:
                turn["context"] = context
            meta = _json_cell(r, "turn_metadata")
            if meta is not None and not isinstance(meta, dict):
                raise _RowError(r, "turn_metadata", "expected a JSON object")
            meta = dict(meta or {})
            for column in extra:
                if v.get(column, "") != "":
                    meta[column] = v[column]
            if meta:
                turn["metadata"] = meta
            if v.get("turn_id", "").strip():
                turn["id"] = v["turn_id"].strip()
            turns.append(turn)
            origins.append(r)
        event = _feedback(r)
        if event is not None:
            turn.setdefault("feedback", []).append(event)
    return {**native, "turns": turns}, origins


def _feedback(r: _Row) -> dict | None:
    v = r.values
    kind = v.get("feedback_type", "").strip().lower()
    rating = _number(r, "rating", int)
    text = v.get("feedback_text", "")
    categories = [c.strip() for c in v.get("feedback_categories", "").replace("|", ";").split(";") if c.strip()]
    correction = v.get("correction", "")
    if not kind:
        if rating is not None:
            kind = "rating"
        elif correction:
            kind = "correction"
        elif categories:
            kind = "category"
        elif text:
            kind = "comment"
        else:
            return None
    event: dict[str, Any] = {"type": kind}
    if rating is not None:
        event["rating"] = rating
    if categories:
        event["categories"] = categories
    if text:
        event["text"] = text
    if correction:
        event["correction"] = correction
    if v.get("feedback_created_at", "").strip():
        event["created_at"] = v["feedback_created_at"].strip()
    if v.get("feedback_id", "").strip():
        event["id"] = v["feedback_id"].strip()
    meta = _json_cell(r, "feedback_metadata")
    if meta is not None:
        if not isinstance(meta, dict):
            raise _RowError(r, "feedback_metadata", "expected a JSON object")
        event["metadata"] = meta
    return event
