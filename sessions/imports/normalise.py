"""Validate one conversation in the native shape and turn it into the plain row tuples the pipeline loads.

Every format is mapped onto the native FeedbackHub shape (``docs/import-format.md``) and then goes through
:func:`normalise`, so validation and the denormalised columns are computed in one place. The output is plain
tuples in the column order of the ``*_COLUMNS`` lists below; :mod:`sessions.imports.pipeline` COPYs them as they
are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from sessions.imports.errors import RecordError
from sessions.models import (
    NEGATIVE_KINDS,
    RATING_NEGATIVE_MAX,
    Environment,
    FeedbackKind,
    TurnRole,
)

#: Bumped whenever normalisation changes, so a re-import of an unchanged file rewrites what it would now store.
NORMALISE_VERSION = "1"
TITLE_MAX_CHARS = 200
#: How much of a conversation's text goes into ``search_vector``: its turns in order (the title is the first user
#: query), this many characters in all. PostgreSQL's text-search parser costs about 0.2 microseconds a character on
#: the reference machine and would otherwise be the most expensive step of an import.
SEARCH_TEXT_LIMIT = 400
EVENT_KEY_MAX = 64
TEXT_LIMITS = {
    "external_id": 255,
    "source": 100,
    "end_user_id": 255,
    "user_role": 64,
    "model_version": 128,
    "app_version": 128,
    "category": 100,
}
PG_INT_MAX = 2**31 - 1
MODEL_VERSION_MAX = TEXT_LIMITS["model_version"]
_fromisoformat = datetime.fromisoformat

ROLES = frozenset(TurnRole.values)
KINDS = frozenset(FeedbackKind.values)
ENVIRONMENTS = frozenset(Environment.values)
_NEGATIVE = frozenset(str(k) for k in NEGATIVE_KINDS)
_RATING = str(FeedbackKind.RATING)
_KIND_LIST = ", ".join(sorted(KINDS))
_ROLE_LIST = ", ".join(TurnRole.values)

#: Columns of the conversation staging rows, in order (the pipeline adds the chunk-local key ``k`` in front).
CONVERSATION_COLUMNS = (
    "source", "external_id", "content_hash", "title", "end_user_id", "user_role", "environment", "model_version",
    "app_version", "started_at", "ended_at", "metadata", "turn_count", "feedback_kinds", "has_negative_feedback",
    "search_text",
)  # fmt: skip
#: Columns of a turn row (the pipeline adds ``conversation_id`` in front).
TURN_COLUMNS = (
    "position", "role", "content", "created_at", "latency_ms", "prompt_tokens", "completion_tokens",
    "model_version", "confidence", "system_prompt", "retrieved_documents", "tool_calls", "metadata",
)  # fmt: skip
#: Columns of a feedback row (the pipeline adds ``conversation_id`` in front; ``position`` finds the turn).
FEEDBACK_COLUMNS = (
    "position", "event_key", "kind", "rating", "categories", "text", "correction", "is_negative", "created_at",
    "metadata",
)  # fmt: skip

_EMPTY_LIST_JSON = "[]"
_EMPTY_OBJ_JSON = "{}"
_dumps = orjson.dumps


class Conversation:
    """A validated conversation: its key, content hash and the rows to store. ``line`` is where it starts."""

    __slots__ = ("line", "source", "external_id", "content_hash", "row", "turns", "feedback", "stored_turns")

    def __init__(self, line: int, row: tuple, turns: list[tuple], feedback: list[tuple]) -> None:
        self.line = line
        #: Leading turns the caller read from the database inside the merge's transaction and left as they were:
        #: the merge of an update writes only the turns after them (an append, as OTLP spans extend a conversation).
        self.stored_turns = 0
        self.source = row[0]
        self.external_id = row[1]
        self.content_hash = row[2]
        self.row = row
        self.turns = turns
        self.feedback = feedback

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.external_id)


def content_hash(fmt: str, *parts: bytes) -> str:
    """sha256 over the format, the normaliser version and the record's raw bytes: equal input, equal rows."""
    h = hashlib.sha256(f"{fmt}:{NORMALISE_VERSION}\n".encode())
    for part in parts:
        h.update(part)
    return h.hexdigest()


def stable_id(value: Any) -> str:
    """An id for a record that has none: a hash of its content (key order does not matter)."""
    return "sha256:" + hashlib.sha256(_dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]


# --- Field helpers (each raises RecordError naming the field) -------------------------------------------------


def _text(value: Any, field: str, limit: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        s = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        s = str(value)
    else:
        raise RecordError(field, f"expected a string, got {_kind(value)}")
    if limit is not None and len(s) > limit:
        raise RecordError(field, f"longer than {limit} characters ({len(s)})")
    return s


def _content(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise RecordError(field, f"expected a string, got {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def timestamp(value: Any, field: str) -> str | None:
    """ISO-8601 (a missing offset means UTC) or epoch seconds, as an ISO string PostgreSQL reads unambiguously."""
    if value.__class__ is str and len(value) >= 19 and value[10] == "T" and value[4] == "-":
        # The common extended form: PostgreSQL reads it as it is, so only check it and add UTC when naive.
        try:
            dt = _fromisoformat(value)
        except ValueError:
            raise RecordError(field, f"not a valid ISO-8601 date-time: {value[:40]!r}") from None
        return value if dt.tzinfo is not None else value + "+00:00"
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(field, f"not an ISO-8601 date-time: {value[:40]!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise RecordError(field, f"epoch seconds out of range: {value}") from None
    raise RecordError(field, f"expected an ISO-8601 date-time string, got {_kind(value)}")


def _count(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RecordError(field, f"expected a whole number, got {_kind(value)}")
    if value < 0 or value > PG_INT_MAX:
        raise RecordError(field, f"out of range (0 to {PG_INT_MAX}): {value}")
    return value


def _object(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(field, f"expected an object, got {_kind(value)}")
    return value


def _json(value: Any, empty: str) -> str:
    return _dumps(value).decode() if value else empty


def pg_text_array(items: list[str]) -> str:
    """A PostgreSQL array literal for a list of strings."""
    return "{" + ",".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items) + "}"


def shorten(text: str, limit: int) -> str:
    text = " ".join(text[: limit * 2].split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- Records --------------------------------------------------------------------------------------------------


def normalise(
    rec: Any, *, default_source: str, line: int, content_hash: str, external_id: str | None = None
) -> Conversation:
    """Validate ``rec`` (the native shape) and build its rows. ``external_id`` overrides ``rec["id"]``."""
    if not isinstance(rec, dict):
        raise RecordError("", f"expected a JSON object for the conversation, got {_kind(rec)}")
    get = rec.get
    if external_id is None:
        raw_id = get("id")
        if raw_id is None or raw_id == "":
            raise RecordError("id", "missing: every conversation needs an id (unique within its source)")
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            raise RecordError("id", f"expected a string, got {_kind(raw_id)}")
        external_id = _text(raw_id, "id", TEXT_LIMITS["external_id"])
    source = _text(get("source"), "source", TEXT_LIMITS["source"]) or default_source
    user = get("user")
    if user is None:
        end_user_id = user_role = ""
    elif isinstance(user, dict):
        end_user_id = _text(user.get("id"), "user.id", TEXT_LIMITS["end_user_id"])
        user_role = _text(user.get("role"), "user.role", TEXT_LIMITS["user_role"])
    else:
        raise RecordError("user", f"expected an object with id and role, got {_kind(user)}")
    environment = get("environment") or ""
    if environment and environment not in ENVIRONMENTS:
        if not isinstance(environment, str) or environment.lower() not in ENVIRONMENTS:
            raise RecordError("environment", f"must be one of dev, test, prod; got {str(environment)[:40]!r}")
        environment = environment.lower()
    model_version = _text(get("model_version"), "model_version", TEXT_LIMITS["model_version"])
    app_version = _text(get("app_version"), "app_version", TEXT_LIMITS["app_version"])
    started_at = timestamp(get("started_at"), "started_at")
    ended_at = timestamp(get("ended_at"), "ended_at")
    metadata = get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise RecordError("metadata", f"expected an object, got {_kind(metadata)}")
    turns_in = get("turns")
    if not isinstance(turns_in, list):
        raise RecordError("turns", "missing" if turns_in is None else f"expected an array, got {_kind(turns_in)}")
    if not turns_in:
        raise RecordError("turns", "empty: a conversation needs at least one turn")

    turns: list[tuple] = []
    feedback: list[tuple] = []
    for position, turn in enumerate(turns_in):
        try:
            turns.append(turn_row(turn, position))
            events = turn.get("feedback")
            if events:
                _events(events, position, feedback)
        except RecordError as exc:
            raise exc.within(f"turns[{position}]") from None
    derived = summary(((t[1], t[2]) for t in turns), ((f[2], f[7]) for f in feedback))

    row = (
        source, external_id, content_hash, derived.title, end_user_id, user_role, environment, model_version,
        app_version, started_at, ended_at, _dumps(metadata).decode() if metadata else "{}", derived.turn_count,
        "{" + ",".join(derived.feedback_kinds) + "}", derived.has_negative_feedback, derived.search_text,
    )  # fmt: skip
    return Conversation(line, row, turns, feedback)


class Summary(NamedTuple):
    """A conversation's denormalised columns, derived from its turns and feedback events."""

    title: str
    turn_count: int
    feedback_kinds: list[str]
    has_negative_feedback: bool
    #: What ``search_vector`` is built from.
    search_text: str


def summary(turns: Iterable[tuple[str, str]], feedback: Iterable[tuple[str, bool]]) -> Summary:
    """The denormalised columns of a conversation from its turns' ``(role, content)`` in order and its feedback
    events' ``(kind, is_negative)``: the title is the first user query, the search text the turns' text up to
    ``SEARCH_TEXT_LIMIT`` characters."""
    title = ""
    search_parts: list[str] = []
    search_len = 0
    turn_count = 0
    for role, content in turns:
        turn_count += 1
        if content:
            if not title and role == "user":
                title = shorten(content, TITLE_MAX_CHARS)
            if search_len < SEARCH_TEXT_LIMIT:
                piece = content[: SEARCH_TEXT_LIMIT - search_len]
                search_parts.append(piece)
                search_len += len(piece) + 1
    kinds: set[str] = set()
    negative = False
    for kind, is_negative in feedback:
        kinds.add(kind)
        negative = negative or is_negative
    return Summary(title, turn_count, sorted(kinds), negative, "\n".join(search_parts)[:SEARCH_TEXT_LIMIT])


def feedback_is_negative(kind: str, rating: int | None) -> bool:
    """Whether a feedback event counts as negative: a negative kind, or a rating at or below
    ``RATING_NEGATIVE_MAX``."""
    return kind in _NEGATIVE or (rating is not None and rating <= RATING_NEGATIVE_MAX)


def turn_row(turn: Any, position: int) -> tuple:
    """One turn's row. Field names in errors are relative to the turn (the caller adds ``turns[i]``)."""
    if turn.__class__ is not dict:
        raise RecordError("", f"expected an object, got {_kind(turn)}")
    get = turn.get
    role = get("role")
    if role not in ROLES:
        raise RecordError(
            "role",
            "missing" if role is None else f"must be one of user, assistant, system, tool; got {str(role)[:40]!r}",
        )
    content = get("content")
    if content is None:
        content = ""
    elif content.__class__ is not str:
        raise RecordError("content", f"expected a string, got {_kind(content)}")
    created_at = get("created_at")
    if created_at is not None:
        created_at = timestamp(created_at, "created_at")
    latency = get("latency_ms")
    if latency is not None and not (latency.__class__ is int and 0 <= latency <= PG_INT_MAX):
        latency = _count(latency, "latency_ms")
    prompt_tokens = completion_tokens = None
    usage = get("usage")
    if usage is not None:
        if usage.__class__ is not dict:
            raise RecordError("usage", f"expected an object, got {_kind(usage)}")
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is not None and not (prompt_tokens.__class__ is int and 0 <= prompt_tokens <= PG_INT_MAX):
            prompt_tokens = _count(prompt_tokens, "usage.prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        if completion_tokens is not None and not (
            completion_tokens.__class__ is int and 0 <= completion_tokens <= PG_INT_MAX
        ):
            completion_tokens = _count(completion_tokens, "usage.completion_tokens")
    model = get("model_version")
    if model is None:
        model = ""
    elif not (model.__class__ is str and len(model) <= MODEL_VERSION_MAX):
        model = _text(model, "model_version", MODEL_VERSION_MAX)
    confidence = get("confidence")
    if confidence is not None:
        if confidence.__class__ not in (int, float) or not 0 <= confidence <= 1:
            raise RecordError("confidence", f"expected a number from 0 to 1, got {confidence!r:.40}")
        confidence = float(confidence)
    context = get("context")
    if context is None:
        system_prompt, docs_json, tools_json = "", _EMPTY_LIST_JSON, _EMPTY_LIST_JSON
    else:
        system_prompt, docs_json, tools_json = _context(context)
    meta = get("metadata")
    if meta is not None and meta.__class__ is not dict:
        raise RecordError("metadata", f"expected an object, got {_kind(meta)}")
    turn_id = get("id")
    if turn_id is not None:
        meta = {**(meta or {}), "id": turn_id}
    return (
        position, role, content, created_at, latency, prompt_tokens, completion_tokens, model, confidence,
        system_prompt, docs_json, tools_json, _dumps(meta).decode() if meta else _EMPTY_OBJ_JSON,
    )  # fmt: skip


def _events(events: Any, position: int, out: list[tuple]) -> None:
    if events.__class__ is not list:
        raise RecordError("feedback", f"expected an array, got {_kind(events)}")
    seen: set[str] = set()
    for i, event in enumerate(events):
        try:
            row = feedback_row(event, position)
        except RecordError as exc:
            raise exc.within(f"feedback[{i}]") from None
        key = row[1]
        if key in seen:  # the same event twice on one turn: keep both, keyed by occurrence
            n = 2
            while f"{key}#{n}" in seen:
                n += 1
            key = f"{key}#{n}"[-EVENT_KEY_MAX:]
            row = (row[0], key, *row[2:])
        seen.add(key)
        out.append(row)


def _context(context: Any, field: str = "context") -> tuple[str, str, str]:
    if context.__class__ is not dict:
        raise RecordError(field, f"expected an object, got {_kind(context)}")
    system_prompt = context.get("system_prompt")
    if system_prompt is None:
        system_prompt = ""
    elif system_prompt.__class__ is not str:
        raise RecordError(f"{field}.system_prompt", f"expected a string, got {_kind(system_prompt)}")
    docs = context.get("retrieved_documents")
    if docs:
        if not isinstance(docs, list):
            raise RecordError(f"{field}.retrieved_documents", f"expected an array, got {_kind(docs)}")
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict):
                raise RecordError(f"{field}.retrieved_documents[{i}]", f"expected an object, got {_kind(doc)}")
            score = doc.get("score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
                raise RecordError(f"{field}.retrieved_documents[{i}].score", f"expected a number, got {_kind(score)}")
    tools = context.get("tool_calls")
    if tools:
        if not isinstance(tools, list):
            raise RecordError(f"{field}.tool_calls", f"expected an array, got {_kind(tools)}")
        for i, call in enumerate(tools):
            if not isinstance(call, dict):
                raise RecordError(f"{field}.tool_calls[{i}]", f"expected an object, got {_kind(call)}")
            if not isinstance(call.get("name"), str) or not call["name"]:
                raise RecordError(f"{field}.tool_calls[{i}].name", "missing: a tool call needs the tool's name")
    return system_prompt, _json(docs, _EMPTY_LIST_JSON), _json(tools, _EMPTY_LIST_JSON)


def feedback_row(event: Any, position: int) -> tuple:
    """One feedback event's row (``FEEDBACK_COLUMNS``) for the turn at ``position``; RecordError names the field
    relative to the event."""
    if not isinstance(event, dict):
        raise RecordError("", f"expected an object, got {_kind(event)}")
    get = event.get
    kind = get("type")
    if kind not in KINDS:
        raise RecordError(
            "type",
            "missing" if kind is None else f"unknown feedback type {str(kind)[:40]!r} (one of {_KIND_LIST})",
        )
    rating = get("rating")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, int | float) or not float(rating).is_integer():
            raise RecordError("rating", f"expected a whole number from 1 to 5, got {_kind(rating)}")
        rating = int(rating)
        if not 1 <= rating <= 5:
            raise RecordError("rating", f"must be from 1 to 5, got {rating}")
    elif kind == _RATING:
        raise RecordError("rating", "missing: a feedback event of type rating needs a rating from 1 to 5")
    categories = get("categories")
    if categories:
        if not isinstance(categories, list):
            raise RecordError("categories", f"expected an array of strings, got {_kind(categories)}")
        for i, c in enumerate(categories):
            if not isinstance(c, str) or not c:
                raise RecordError(f"categories[{i}]", f"expected a non-empty string, got {_kind(c)}")
            if len(c) > TEXT_LIMITS["category"]:
                raise RecordError(f"categories[{i}]", f"longer than {TEXT_LIMITS['category']} characters")
        categories_literal = pg_text_array(categories)
    else:
        categories = []
        categories_literal = "{}"
    text = _content(get("text"), "text")
    correction = _content(get("correction"), "correction")
    created_at = timestamp(get("created_at"), "created_at")
    metadata = _object(get("metadata"), "metadata")
    event_id = get("id")
    if event_id is not None and event_id != "":
        if isinstance(event_id, bool) or not isinstance(event_id, str | int):
            raise RecordError("id", f"expected a string, got {_kind(event_id)}")
        key = str(event_id)
        if len(key) > EVENT_KEY_MAX:
            key = stable_id(key)
    else:
        key = stable_id([kind, rating, categories, text, correction, created_at, metadata])
    negative = feedback_is_negative(kind, rating)
    return (
        position, key, kind, rating, categories_literal, text, correction, negative, created_at,
        _dumps(metadata).decode() if metadata else "{}",
    )  # fmt: skip
