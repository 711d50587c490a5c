"""Writes of the live ingest: batches of conversations and end-user feedback events.

Conversations take the import's road: each record is validated by ``normalise`` (the native format, the same
errors with the same field paths) and merged by the import ``Loader`` on the ``(source, id)`` key, so a record
sent again unchanged is unchanged, an edited one (a turn appended to a live conversation) is updated in place, and
every request is an ImportBatch whose end sends ``conversations_imported`` like a file import's.

Feedback events are stored in one statement per request (``sessions.ingest.sql``), keyed by ``(turn, id)``: sending
an event again stores nothing. They are marked with their origin (API or widget), so a later update of the
conversation's record does not remove them, and ``feedback_received`` tells the apps above (recall makes items).

Appends add turns at the end of stored conversations without rewriting them, for a source that only ever extends
its conversations (OTLP spans, :mod:`sessions.ingest.otlp`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from sessions import events
from sessions.imports import merge_sql as sql
from sessions.imports.base import Rejected
from sessions.imports.chunking import Chunk
from sessions.imports.errors import RecordError
from sessions.imports.loading import UNCHANGED, Loader, copy_in
from sessions.imports.normalise import (
    EVENT_KEY_MAX,
    TITLE_MAX_CHARS,
    content_hash,
    feedback_row,
    normalise,
    shorten,
    summary,
    turn_row,
)
from sessions.ingest import sql as ingest_sql
from sessions.models import (
    SEARCH_CONFIG,
    Conversation,
    FeedbackEvent,
    FeedbackOrigin,
    ImportBatch,
    ImportFormat,
    ImportStatus,
)

#: Record outcomes, as the API names them.
CREATED, UPDATED, REJECTED, DUPLICATE = "created", "updated", "rejected", "duplicate"
#: Why a feedback event was rejected when what it names does not exist (yet): the API answers 404 for these.
NO_CONVERSATION = "no such conversation in this source (send the conversation first)"
NO_TURN = "no such turn in the conversation"


class SourceForbidden(Exception):
    """A record or event names a source its sender may not write (the whole request is refused)."""

    def __init__(self, field: str, source: str) -> None:
        super().__init__(f"{field}: this credential may not write to the source {source!r}.")
        self.field, self.source = field, source


@dataclass
class Outcome:
    """What became of one record or event of a request (``index`` is its place in the request, from 0)."""

    index: int
    status: str
    id: str | None = None
    source: str | None = None
    field: str | None = None
    reason: str | None = None
    #: The stored row (conversation or feedback event) when there is one.
    pk: int | None = None

    @property
    def not_found(self) -> bool:
        """Rejected because the conversation or turn it names does not exist (yet)."""
        return self.status == REJECTED and self.reason in (NO_CONVERSATION, NO_TURN)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Result:
    outcomes: list[Outcome] = field(default_factory=list)
    batch_id: int | None = None

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for o in self.outcomes:
            out[o.status] += 1
        return dict(out)


def _record_source(rec: Any, default_source: str | None) -> str | None:
    source = rec.get("source") if isinstance(rec, dict) else None
    if isinstance(source, str) and source:
        return source
    return default_source


def _canonical_hash(rec: Any) -> str:
    """The content hash of a record sent through the API: over its canonical JSON (sorted keys), so the JSON and
    NDJSON forms of the same record, or the same record re-serialised by another client, are the same content."""
    try:
        raw = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        raw = repr(rec).encode()
    return content_hash(ImportFormat.NATIVE, raw)


def _label_of(rec: Any) -> str | None:
    rid = rec.get("id") if isinstance(rec, dict) else None
    return str(rid)[:255] if isinstance(rid, str | int) and not isinstance(rid, bool) else None


def conversations_ingest(
    *,
    records: Sequence[Any],
    may_write: Callable[[str], bool],
    default_source: str | None,
    label: str,
    body_bytes: int = 0,
    stored_turns: dict[tuple[str, str], int] | None = None,
) -> Result:
    """Validate and merge ``records`` (native conversation records) in one transaction; returns each record's
    outcome and the batch. ``may_write(source)`` guards every record's source: one it refuses raises
    SourceForbidden before anything is written. A record without a source takes ``default_source``.
    ``stored_turns`` (for callers that rebuilt records from stored turns, in the caller's transaction) tells how many
    leading turns of a conversation are stored as they are (``normalise.Conversation.stored_turns``)."""
    for i, rec in enumerate(records):
        source = _record_source(rec, default_source)
        if source is not None and not may_write(source):
            raise SourceForbidden(f"conversations[{i}].source", source)
    outcomes: list[Outcome] = []
    valid: dict[tuple[str, str], tuple[int, Any]] = {}  # key -> (index, normalised conversation); last one wins
    rejected: list[Rejected] = []
    for i, rec in enumerate(records):
        source = _record_source(rec, default_source)
        outcome = Outcome(index=i, status=REJECTED, id=_label_of(rec), source=source)
        outcomes.append(outcome)
        if source is None:
            outcome.field, outcome.reason = "source", "missing: name the conversation's source (app)"
            rejected.append(Rejected(i + 1, "source", outcome.reason))
            continue
        try:
            conv = normalise(rec, default_source=source, line=i + 1, content_hash=_canonical_hash(rec))
        except RecordError as exc:
            outcome.field, outcome.reason = exc.field, exc.reason
            rejected.append(Rejected(i + 1, exc.field, exc.reason, orjson.dumps(rec)[:300] if rec else b""))
            continue
        earlier = valid.get(conv.key)
        if earlier is not None:  # the same conversation twice in one request: the later record is the newer one
            dropped = outcomes[earlier[0]]
            dropped.field, dropped.reason = "id", f"sent again later in this request (conversations[{i}])"
            rejected.append(Rejected(earlier[0] + 1, "id", dropped.reason))
        valid[conv.key] = (i, conv)
        if stored_turns:
            conv.stored_turns = stored_turns.get(conv.key, 0)
        outcome.id = conv.external_id
    states: dict[tuple[str, str], str] = {}
    conversations = [conv for _, conv in sorted(valid.values(), key=lambda pair: pair[0])]
    with transaction.atomic():
        now = timezone.now()
        batch = ImportBatch.objects.create(
            file_name=label[:500], source=(default_source or (conversations[0].source if conversations else ""))[:100],
            format=ImportFormat.NATIVE, status=ImportStatus.RUNNING, started_at=now, heartbeat_at=now,
            total_bytes=body_bytes,
        )
        chunk = Chunk(records=len(records), conversations=conversations, rejected=sorted(rejected, key=_line),
                      position=body_bytes)
        Loader(batch, outcomes=states).merge_chunk(chunk)
        refused = {r.line for r in chunk.rejected}
        for index, conv in valid.values():
            outcome = outcomes[index]
            if index + 1 in refused:  # refused by the database (merged record by record)
                outcome.reason = next(r.reason for r in chunk.rejected if r.line == index + 1)
                continue
            outcome.status = states.get(conv.key, UNCHANGED)
        rejected_count = sum(1 for o in outcomes if o.status == REJECTED)
        batch.records_rejected = rejected_count
        batch.status = ImportStatus.DONE_WITH_REJECTIONS if rejected_count else ImportStatus.DONE
        batch.finished_at = timezone.now()
        batch.bytes_read = body_bytes
        batch.save()
        _attach_ids(outcomes, valid)
        if batch.conversations_created or batch.conversations_updated:
            events.conversations_imported.send(sender=ImportBatch, batch_id=batch.pk)
    return Result(outcomes=outcomes, batch_id=batch.pk)


def _line(r: Rejected) -> int:
    return r.line


def conversation_key_filter(keys: set[tuple[str, str]], *, prefix: str = "") -> Q:
    """A filter for the conversations with these ``(source, external_id)`` keys (``prefix`` leads to them from
    another model, e.g. ``conversation__``)."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, external_id in keys:
        by_source[source].append(external_id)
    query = Q()
    for source, ids in by_source.items():
        query |= Q(**{f"{prefix}source": source, f"{prefix}external_id__in": ids})
    return query


def _attach_ids(outcomes: list[Outcome], valid: dict[tuple[str, str], tuple[int, Any]]) -> None:
    """Each stored record's conversation id (``pk``)."""
    index_of = {key: index for key, (index, _) in valid.items() if outcomes[index].status != REJECTED}
    if not index_of:
        return
    rows = Conversation.objects.filter(conversation_key_filter(set(index_of)))
    for pk, source, external_id in rows.values_list("pk", "source", "external_id"):
        index = index_of.get((source, external_id))
        if index is not None:
            outcomes[index].pk = pk


# --- Feedback events ----------------------------------------------------------------------------------------------


@dataclass
class _Event:
    index: int
    source: str
    conversation: str
    position: int | None
    turn_id: str | None
    row: tuple


def _event_ref(event: Any, default_source: str | None) -> tuple[str | None, str, int | None, str | None]:
    """(source, conversation id, turn position, turn id) of an event; RecordError names the field."""
    if not isinstance(event, dict):
        raise RecordError("", "expected a JSON object for the feedback event")
    source = event.get("source")
    if source is not None and not (isinstance(source, str) and source):
        raise RecordError("source", "expected a non-empty string")
    source = source or default_source
    conv = event.get("conversation")
    if conv is None or conv == "":
        raise RecordError("conversation", "missing: the id of the conversation the feedback is about")
    if isinstance(conv, bool) or not isinstance(conv, str | int) or len(str(conv)) > 255:
        raise RecordError("conversation", "expected the conversation's id (a string of up to 255 characters)")
    position, turn_id = event.get("turn"), event.get("turn_id")
    if position is None and turn_id is None:
        raise RecordError("turn", "missing: the turn's position in the conversation (from 0), or turn_id")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 0
                                 or position > 100_000):
        raise RecordError("turn", "expected the turn's position, a whole number from 0")
    if turn_id is not None and (isinstance(turn_id, bool) or not isinstance(turn_id, str | int)
                                or len(str(turn_id)) > 255):
        raise RecordError("turn_id", "expected the turn's id from its record (a string)")
    return source, str(conv), position, None if turn_id is None else str(turn_id)


def feedback_events_ingest(
    *,
    events_in: Sequence[Any],
    may_write: Callable[[str], bool],
    default_source: str | None,
    origin: str = FeedbackOrigin.API,
    extra_metadata: dict[str, Any] | None = None,
) -> Result:
    """Store end-user feedback ``events_in`` on the turns they name; returns each event's outcome (created,
    duplicate: already stored under its id, rejected: with field and reason). ``may_write`` guards the sources as in
    ``conversations_ingest``. ``extra_metadata`` is merged into every event's metadata (e.g. the page it came from)."""
    parsed: list[_Event] = []
    outcomes: list[Outcome] = []
    for i, event in enumerate(events_in):
        outcome = Outcome(index=i, status=REJECTED)
        outcomes.append(outcome)
        try:
            source, conv, position, turn_id = _event_ref(event, default_source)
            outcome.source = source
            if source is None:
                raise RecordError("source", "missing: name the conversation's source (app)")
            if not may_write(source):
                raise SourceForbidden(f"events[{i}].source", source)
            row = feedback_row(event, position or 0)
        except RecordError as exc:
            outcome.field, outcome.reason = exc.field or None, exc.reason
            continue
        outcome.id = row[1]
        parsed.append(_Event(i, source, conv, position, turn_id, row))
    if not parsed:
        return Result(outcomes=outcomes)
    now = timezone.now().isoformat()
    rows = []
    for ev in parsed:
        _, event_key, kind, rating, _, text, correction, negative, created_at, _ = ev.row
        metadata = dict(events_in[ev.index].get("metadata") or {})
        if extra_metadata:
            metadata.update(extra_metadata)
        rows.append({
            "i": ev.index, "source": ev.source, "external_id": ev.conversation,
            "position": ev.position if ev.turn_id is None else None, "turn_key": ev.turn_id,
            "event_key": event_key[:EVENT_KEY_MAX], "kind": kind, "rating": rating,
            "categories": list(events_in[ev.index].get("categories") or []), "text": text, "correction": correction,
            "is_negative": negative, "created_at": created_at, "metadata": metadata, "origin": origin,
            "received_at": now,
        })
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Feedback is telemetry: an acknowledged event may be lost only if PostgreSQL itself crashes in the next
            # fraction of a second (the database stays consistent), and the request does not wait for the disk.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute(ingest_sql.STORE_EVENTS, [orjson.dumps(rows).decode()])
            found = cursor.fetchall()
        claimed: set[int] = set()
        for index, _, pk in found:
            outcome = outcomes[index]
            if pk is not None and pk not in claimed:
                claimed.add(pk)
                outcome.status, outcome.pk = CREATED, pk
            else:
                outcome.status = DUPLICATE
        seen = {index for index, _, _ in found}
        missing = [ev for ev in parsed if ev.index not in seen]
        if missing:
            _explain_missing(missing, outcomes)
        if claimed:
            events.feedback_received.send(sender=FeedbackEvent, event_ids=sorted(claimed))
    return Result(outcomes=outcomes)


def _explain_missing(missing: list[_Event], outcomes: list[Outcome]) -> None:
    """Name what is missing for events whose turn was not found: their conversation, or the turn in it."""
    keys = sorted({(ev.source, ev.conversation) for ev in missing})
    with connection.cursor() as cursor:
        cursor.execute(sql.EXISTING, ([k[0] for k in keys], [k[1] for k in keys]))
        existing = {(source, external_id) for source, external_id, _ in cursor.fetchall()}
    for ev in missing:
        outcome = outcomes[ev.index]
        if (ev.source, ev.conversation) not in existing:
            outcome.field, outcome.reason = "conversation", NO_CONVERSATION
        else:
            outcome.field, outcome.reason = "turn_id" if ev.turn_id is not None else "turn", NO_TURN


# --- Appending turns ----------------------------------------------------------------------------------------------


@dataclass
class AppendState:
    """What an appender knows of a stored conversation without reading its turns back."""

    pk: int
    turn_count: int
    content_hash: str
    title: str
    metadata: dict[str, Any]
    #: The last turn's ``metadata.otel.sort`` (None when it has none).
    last_sort: list[int] | None
    #: Of the span and tool-call ids asked about, those its turns hold.
    span_ids: set[str]
    tool_ids: set[str]
    #: Its text while shorter than the search text's limit (None: the search text is complete).
    search_text: str | None


@dataclass
class Append:
    """New turns (native turn records) for the end of a stored conversation."""

    key: tuple[str, str]
    state: AppendState
    turns: list[dict[str, Any]]
    metadata: dict[str, Any]
    model_version: str = ""
    ended_at: str | None = None


def append_states(keys: set[tuple[str, str]], *, span_ids: Sequence[str] = (), tool_ids: Sequence[str] = (),
                  ) -> dict[tuple[str, str], AppendState]:
    """The stored conversations among ``keys``, with what an append needs (``merge_sql.APPEND_STATE``); of
    ``span_ids`` and ``tool_ids`` (those the request brings), the ones each already holds."""
    if not keys:
        return {}
    ordered = sorted(keys)
    with connection.cursor() as cursor:
        cursor.execute(sql.APPEND_STATE, ([s for s, _ in ordered], [e for _, e in ordered], list(span_ids),
                                          list(tool_ids)))
        rows = cursor.fetchall()
    out = {}
    for pk, source, external_id, count, chash, title, metadata, last_sort, spans, tools, text in rows:
        if isinstance(metadata, str):
            metadata = orjson.loads(metadata)
        if isinstance(last_sort, str):
            last_sort = orjson.loads(last_sort)
        out[(source, external_id)] = AppendState(pk, count, chash, title, metadata or {}, last_sort,
                                                 set(spans or ()), set(tools or ()), text)
    return out


def _title_and_search(state: AppendState, turns: list[tuple]) -> tuple[str | None, str | None]:
    """The conversation's new title and search text after ``turns`` (rows), or None where they stay."""
    if state.search_text is None and state.title:
        return None, None
    stored = [("", state.search_text)] if state.search_text else []
    derived = summary([*stored, *((row[1], row[2]) for row in turns)], ())
    title = None
    if not state.title:
        title = next((shorten(row[2], TITLE_MAX_CHARS) for row in turns if row[1] == "user" and row[2]), None)
    return title, derived.search_text if state.search_text is not None else None


def conversations_append(*, appends: Sequence[Append], label: str) -> Result:
    """Add turns at the end of stored conversations (validated like any turn, ``normalise.turn_row``), as one
    ImportBatch, without rewriting what is stored: the new turns are COPYed in after the last position, the
    conversation's count, content hash (chained: the old hash and the new turns), model, metadata and search text
    follow. For a source that only ever extends conversations (OTLP spans), where rebuilding every record on every
    request would cost more the longer a conversation gets. The caller holds the conversations' keys locked."""
    outcomes: list[Outcome] = []
    rows: list[tuple] = []
    updates: list[tuple[Append, str, int, str | None, str | None]] = []
    for i, append in enumerate(appends):
        state = append.state
        outcome = Outcome(index=i, status=REJECTED, id=append.key[1], source=append.key[0], pk=state.pk)
        outcomes.append(outcome)
        try:
            new_rows = [turn_row(turn, state.turn_count + n) for n, turn in enumerate(append.turns)]
        except RecordError as exc:
            outcome.field, outcome.reason = exc.field, exc.reason
            continue
        chained = content_hash(ImportFormat.NATIVE, state.content_hash.encode(),
                               orjson.dumps(append.turns, option=orjson.OPT_SORT_KEYS))
        rows.extend((state.pk, *row) for row in new_rows)
        updates.append((append, chained, state.turn_count + len(new_rows), *_title_and_search(state, new_rows)))
        outcome.status = UPDATED
    if not updates:
        return Result(outcomes=outcomes)
    with transaction.atomic():
        now = timezone.now()
        batch = ImportBatch.objects.create(
            file_name=label[:500], source=updates[0][0].key[0][:100], format=ImportFormat.NATIVE,
            status=ImportStatus.RUNNING, started_at=now, heartbeat_at=now,
        )
        with connection.cursor() as cursor, connection.wrap_database_errors:
            copy_in(cursor.cursor, sql.COPY_TURNS, rows)
            cursor.execute(sql.APPEND_CONVERSATIONS, {
                "config": SEARCH_CONFIG, "batch": batch.pk,
                "ids": [u[0].state.pk for u in updates], "hashes": [u[1] for u in updates],
                "counts": [u[2] for u in updates], "models": [u[0].model_version for u in updates],
                # None keeps the stored metadata (the usual case: an append changes only the turns).
                "metadata": [None if u[0].metadata == u[0].state.metadata else orjson.dumps(u[0].metadata).decode()
                             for u in updates],
                "ended": [u[0].ended_at for u in updates], "titles": [u[3] for u in updates],
                "search": [u[4] for u in updates],
            })
        rejected = sum(1 for o in outcomes if o.status == REJECTED)
        ImportBatch.objects.filter(pk=batch.pk).update(
            status=ImportStatus.DONE_WITH_REJECTIONS if rejected else ImportStatus.DONE, finished_at=timezone.now(),
            records_read=len(appends), conversations_updated=len(updates), records_rejected=rejected,
            turns_written=len(rows),
        )
        events.conversations_imported.send(sender=ImportBatch, batch_id=batch.pk)
    return Result(outcomes=outcomes, batch_id=batch.pk)
