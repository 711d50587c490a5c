"""The import pipeline shared by every format: parse in a reader thread, load chunks with COPY, merge with SQL.

How one file goes in:

1. A reader thread streams the file through its format module, which yields validated
   :class:`~sessions.importers.normalise.Conversation` rows (plain tuples) or :class:`~sessions.importers.base.Rejected`
   records. It groups them into chunks of ``CHUNK_CONVERSATIONS`` conversations (or whatever arrived within
   ``CHUNK_SECONDS``, or in ``CHUNK_BYTES`` of input) and hands them over through a queue of ``QUEUE_CHUNKS``,
   so memory stays flat for any file size and Python parsing overlaps with PostgreSQL's work on the previous
   chunk.
2. The caller's thread (which owns the Django database connection) merges each chunk in one transaction:

   * conversations stored with the same ``content_hash`` are counted and go no further. For formats that can tell
     a record's key before validating it (native), the reader thread already looks the keys up on its own
     connection and skips validating such records (a re-import of an unchanged file costs a parse, a hash and
     an index probe per record); otherwise the loader looks the chunk's keys up first;
   * the rest is COPYed into a TEMP staging table and upserted with ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
     content_hash changed ... RETURNING``, which tells created from updated;
   * turns of created conversations are COPYed straight into the turn table; turns of updated conversations go
     through staging and an upsert on ``(conversation, position)`` that only writes changed rows, and turns beyond
     the new length are deleted (through the ORM, so whatever references them is deleted the way the models say);
     annotated turns whose text changes are re-anchored by a task sent when the chunk commits;
   * feedback events go through staging and an upsert on ``(turn, event_key)``; events no longer in an updated
     record are deleted;
   * rejected records of the chunk are stored (up to ``IMPORT_MAX_REJECTIONS_STORED`` per import) and the batch's
     counters are saved, so a browser polling the batch sees progress after every chunk.

   If PostgreSQL refuses a chunk, the chunk is merged again one conversation at a time, each in a savepoint, and
   the conversations it refuses are rejected with its message: the rest of the chunk still goes in.

:func:`copy_rows` gives the exact rows and columns this pipeline COPYs for a conversation, for benchmarks that COPY
the same rows raw.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction

from sessions import events
from sessions.importers.base import Item, Parsed, Rejected
from sessions.importers.errors import FileError
from sessions.importers.normalise import CONVERSATION_COLUMNS, FEEDBACK_COLUMNS, TURN_COLUMNS, Conversation
from sessions.importers.reader import ImportFile
from sessions.models import SEARCH_CONFIG, FeedbackEvent, ImportBatch, ImportRejection, Turn
from sessions.models import Conversation as ConversationModel

logger = logging.getLogger(__name__)

CHUNK_CONVERSATIONS = 2000
#: A chunk also ends after this many bytes of input, so a file of huge records still holds a bounded amount.
CHUNK_BYTES = 24 * 1024 * 1024
CHUNK_SECONDS = 0.4
QUEUE_CHUNKS = 2

CONV_TABLE = ConversationModel._meta.db_table
TURN_TABLE = Turn._meta.db_table
FEEDBACK_TABLE = FeedbackEvent._meta.db_table

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS fh_stage_conv (
    k integer, source text, external_id text, content_hash text, title text, end_user_id text, user_role text,
    environment text, model_version text, app_version text, started_at timestamptz, ended_at timestamptz,
    metadata jsonb, turn_count integer, feedback_kinds text[], has_negative_feedback boolean, search_text text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS fh_stage_turn (
    conversation_id bigint, position integer, role text, content text, created_at timestamptz, latency_ms integer,
    prompt_tokens integer, completion_tokens integer, model_version text, confidence double precision,
    system_prompt text, retrieved_documents jsonb, tool_calls jsonb, metadata jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS fh_stage_fb (
    conversation_id bigint, position integer, event_key text, kind text, rating smallint, categories text[],
    text text, correction text, is_negative boolean, created_at timestamptz, metadata jsonb
) ON COMMIT DELETE ROWS;
"""

_CONV_SET = ", ".join(
    f"{c} = EXCLUDED.{c}"
    for c in (
        "content_hash",
        "title",
        "end_user_id",
        "user_role",
        "environment",
        "model_version",
        "app_version",
        "started_at",
        "ended_at",
        "metadata",
        "turn_count",
        "feedback_kinds",
        "has_negative_feedback",
        "search_vector",
        "updated_at",
        "last_import_id",
    )  # fmt: skip
)
UPSERT_CONVERSATIONS = f"""
INSERT INTO {CONV_TABLE} (
    source, external_id, content_hash, title, end_user_id, user_role, environment, model_version, app_version,
    started_at, ended_at, metadata, turn_count, feedback_kinds, has_negative_feedback, search_vector,
    imported_at, updated_at, last_import_id)
SELECT source, external_id, content_hash, title, end_user_id, user_role, environment, model_version, app_version,
    started_at, ended_at, metadata, turn_count, feedback_kinds, has_negative_feedback,
    to_tsvector(%(config)s::regconfig, search_text), now(), now(), %(batch)s
FROM fh_stage_conv ORDER BY k
ON CONFLICT (source, external_id) DO UPDATE SET {_CONV_SET}
WHERE {CONV_TABLE}.content_hash <> EXCLUDED.content_hash
RETURNING id, source, external_id, (xmax = 0) AS created
"""  # noqa: S608 (table and column names are constants)

_TURN_VALUE_COLUMNS = TURN_COLUMNS[1:]  # all but position
UPSERT_TURNS = f"""
INSERT INTO {TURN_TABLE} (conversation_id, {", ".join(TURN_COLUMNS)})
SELECT conversation_id, {", ".join(TURN_COLUMNS)} FROM fh_stage_turn
ON CONFLICT (conversation_id, position) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _TURN_VALUE_COLUMNS)}
WHERE ({", ".join(f"{TURN_TABLE}.{c}" for c in _TURN_VALUE_COLUMNS)})
    IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _TURN_VALUE_COLUMNS)})
"""  # noqa: S608 (table and column names are constants)

_FB_VALUE_COLUMNS = ("kind", "rating", "categories", "text", "correction", "is_negative", "created_at", "metadata")
UPSERT_FEEDBACK = f"""
INSERT INTO {FEEDBACK_TABLE} (conversation_id, turn_id, event_key, {", ".join(_FB_VALUE_COLUMNS)})
SELECT s.conversation_id, t.id, s.event_key, {", ".join(f"s.{c}" for c in _FB_VALUE_COLUMNS)}
FROM fh_stage_fb s CROSS JOIN LATERAL (
    SELECT id FROM {TURN_TABLE} WHERE conversation_id = s.conversation_id AND position = s.position LIMIT 1) t
ON CONFLICT (turn_id, event_key) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _FB_VALUE_COLUMNS)}
WHERE ({", ".join(f"{FEEDBACK_TABLE}.{c}" for c in _FB_VALUE_COLUMNS)})
    IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _FB_VALUE_COLUMNS)})
"""  # noqa: S608 (table and column names are constants)

STALE_FEEDBACK = f"""
SELECT f.id FROM unnest(%s::bigint[]) AS u(id)
CROSS JOIN LATERAL (SELECT id, turn_id, event_key FROM {FEEDBACK_TABLE} WHERE conversation_id = u.id) f
CROSS JOIN LATERAL (SELECT position FROM {TURN_TABLE} WHERE id = f.turn_id) t
WHERE NOT EXISTS (
    SELECT 1 FROM fh_stage_fb s
    WHERE s.conversation_id = u.id AND s.position = t.position AND s.event_key = f.event_key)
"""  # noqa: S608 (table and column names are constants)

# Turns whose text the staged rows change (read before the turn upsert writes the new text).
TEXT_CHANGED_TURNS = f"""
SELECT t.id FROM fh_stage_turn s
CROSS JOIN LATERAL (
    SELECT id, content FROM {TURN_TABLE} WHERE conversation_id = s.conversation_id AND position = s.position LIMIT 1) t
WHERE t.content IS DISTINCT FROM s.content
"""  # noqa: S608 (table and column names are constants)


SURPLUS_TURNS = f"""
SELECT t.id FROM unnest(%s::bigint[], %s::integer[]) AS u(id, n)
CROSS JOIN LATERAL (SELECT id FROM {TURN_TABLE} WHERE conversation_id = u.id AND position >= u.n) t
"""  # noqa: S608 (table and column names are constants)

# The LATERAL ... LIMIT 1 look-ups keep these plans index probes per staged row whatever the table sizes (a join
# would let the planner hash or merge the whole table while it is small, and each chunk would scan it again).
EXISTING = f"""
SELECT k.source, k.external_id, c.content_hash FROM unnest(%s::text[], %s::text[]) AS k(source, external_id)
CROSS JOIN LATERAL (
    SELECT content_hash FROM {CONV_TABLE} WHERE source = k.source AND external_id = k.external_id LIMIT 1) c
"""  # noqa: S608 (table and column names are constants)


def _copy_sql(table: str, columns: Iterable[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN"


COPY_STAGE_CONV = _copy_sql("fh_stage_conv", ("k", *CONVERSATION_COLUMNS))
COPY_TURNS = _copy_sql(TURN_TABLE, ("conversation_id", *TURN_COLUMNS))
COPY_STAGE_TURNS = _copy_sql("fh_stage_turn", ("conversation_id", *TURN_COLUMNS))
COPY_STAGE_FB = _copy_sql("fh_stage_fb", ("conversation_id", *FEEDBACK_COLUMNS))


def copy_rows(conversation: Conversation, conversation_id: int) -> dict[str, list[tuple]]:
    """The rows this pipeline loads for one conversation, as ``{table: rows}``, in the column order of
    ``COPY_COLUMNS`` (``conversation`` rows are staged; the SQL adds ``search_vector`` from ``search_text``).
    For benchmarks: COPYing these rows raw into the real tables is the baseline the pipeline is measured against."""
    return {
        "conversation": [(0, *conversation.row)],
        "turn": [(conversation_id, *t) for t in conversation.turns],
        "feedback": [(conversation_id, *f) for f in conversation.feedback],
    }


#: Column lists matching :func:`copy_rows`.
COPY_COLUMNS = {
    "conversation": ("k", *CONVERSATION_COLUMNS),
    "turn": ("conversation_id", *TURN_COLUMNS),
    "feedback": ("conversation_id", *FEEDBACK_COLUMNS),
}


def copy_in(cursor: Any, sql: str, rows: Iterable[tuple]) -> None:
    """COPY ``rows`` (plain tuples of str/int/float/bool/None; JSON and arrays as their text) with ``sql``."""
    with cursor.copy(sql) as cp:
        write_row = cp.write_row
        for row in rows:
            write_row(row)


@dataclass
class Chunk:
    records: int = 0
    conversations: list[Conversation] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: Records the reader found stored with the same content hash (not validated, not sent).
    unchanged: int = 0
    #: Whether the reader looked the chunk's conversations up already (then the loader need not).
    prechecked: bool = False
    position: int = 0


UNCHANGED = object()


@dataclass
class _Done:
    sha256: str


class _Producer(threading.Thread):
    """Reads and normalises the file in chunks; puts Chunk, then _Done (or the exception that stopped it)."""

    def __init__(self, f: ImportFile, module: ModuleType, default_source: str) -> None:
        super().__init__(name=f"import-reader-{f.name}", daemon=True)
        self.f = f
        self.module = module
        self.default_source = default_source
        self.out: queue.Queue[Chunk | _Done | BaseException] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.stop = threading.Event()
        self.prechecked = False
        #: Keys of the conversations in the last chunks handed over (some may not be committed yet).
        self.sent: deque[set[tuple[str, str]]] = deque(maxlen=QUEUE_CHUNKS + 2)
        self.current_keys: set[tuple[str, str]] = set()

    def _put(self, item: Chunk | _Done | BaseException) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        started = time.thread_time()
        try:
            self._run()
        except BaseException as exc:  # handed to the consumer, which records it on the batch
            self._put(exc)
        finally:
            connection.close()  # this thread's own connection, if the pre-check opened one
            #: CPU seconds this thread used (parsing, validating, hashing), for benchmarks and logs.
            self.cpu_seconds = time.thread_time() - started

    def _entries(self) -> Iterator[Item | object]:
        """The format's items; with a format that can tell a record's key before validating it, records stored
        unchanged come out as ``UNCHANGED`` without being validated (a re-import costs a parse and a look-up)."""
        iter_parsed = getattr(self.module, "iter_parsed", None)
        if iter_parsed is None:
            yield from self.module.iter_items(self.f, default_source=self.default_source)
            return
        self.prechecked = True
        pending: list[Parsed | Rejected] = []
        start = self.f.content_bytes
        for entry in iter_parsed(self.f, default_source=self.default_source):
            pending.append(entry)
            if len(pending) >= CHUNK_CONVERSATIONS or self.f.content_bytes - start > CHUNK_BYTES:
                yield from self._resolve(pending)
                pending, start = [], self.f.content_bytes
        yield from self._resolve(pending)

    def _resolve(self, pending: list[Parsed | Rejected]) -> Iterator[Item | object]:
        keys = [p.key for p in pending if isinstance(p, Parsed) and p.key is not None]
        stored = self._stored_hashes(keys) if keys else {}
        finish = self.module.finish
        changed: set[tuple[str, str]] = set()  # sent in this batch: a later copy must not be skipped
        for p in pending:
            if isinstance(p, Rejected):
                yield p
            elif (
                p.key is not None
                and stored.get(p.key) == p.content_hash
                and p.key not in changed
                and not self._recently_sent(p.key)
            ):
                yield UNCHANGED
            else:
                if p.key is not None:
                    changed.add(p.key)
                yield finish(p, default_source=self.default_source)

    def _stored_hashes(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Committed content hashes of ``keys``, read on this thread's own connection (so, outside the caller's
        transaction: rows it has not committed yet are not seen, and those records are simply not skipped)."""
        try:
            with connection.cursor() as cursor, connection.wrap_database_errors:
                cursor.cursor.execute(EXISTING, ([k[0] for k in keys], [k[1] for k in keys]))
                return {(s, e): h for s, e, h in cursor.cursor.fetchall()}
        except DatabaseError:
            logger.warning("import pre-check look-up failed; records are validated and merged as usual", exc_info=True)
            return {}

    def _recently_sent(self, key: tuple[str, str]) -> bool:
        # A conversation in a chunk the loader may not have committed yet: the stored hash may be stale.
        return key in self.current_keys or any(key in sent for sent in self.sent)

    def _run(self) -> None:
        chunk = Chunk()
        started = time.monotonic()
        monotonic = time.monotonic
        entries = self._entries()
        f = self.f
        start_bytes = f.content_bytes

        def put() -> bool:
            nonlocal chunk, started, start_bytes
            chunk.position = f.position()
            chunk.prechecked = self.prechecked
            self.sent.append(self.current_keys)
            ok = self._put(chunk)
            chunk, self.current_keys, started, start_bytes = Chunk(), set(), monotonic(), f.content_bytes
            return ok

        while True:
            try:
                item = next(entries)
            except StopIteration:
                break
            except FileError:
                # Merge what was read before the file broke, then report the break.
                if chunk.records:
                    put()
                raise
            if self.stop.is_set():
                return
            if item is UNCHANGED:
                chunk.unchanged += 1
            elif isinstance(item, Conversation):
                key = (item.source, item.external_id)
                if key in self.current_keys and not put():  # the same one twice: merge the first before the second
                    return
                self.current_keys.add(key)
                chunk.conversations.append(item)
            else:
                chunk.rejected.append(item)  # type: ignore[arg-type]
            chunk.records += 1
            if (
                len(chunk.conversations) >= CHUNK_CONVERSATIONS
                or monotonic() - started > CHUNK_SECONDS
                or f.content_bytes - start_bytes > CHUNK_BYTES
            ) and not put():
                return
        if chunk.records and not put():
            return
        self._put(_Done(self.f.sha256()))


class Loader:
    """Merges chunks into the database for one ImportBatch (on the calling thread's Django connection)."""

    def __init__(self, batch: ImportBatch) -> None:
        self.batch = batch
        self.rejections_stored = 0
        self.max_rejections = settings.IMPORT_MAX_REJECTIONS_STORED
        self.file_name = batch.file_name
        #: Wall seconds per merge step, for benchmarks and logs.
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step of the merge (wall seconds, summed per step name in ``timings``)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started

    def merge_chunk(self, chunk: Chunk) -> None:
        """Merge one chunk and save the batch counters, in one transaction (savepoint inside an outer one)."""
        rejected = list(chunk.rejected)
        counts = [0, 0, 0, 0, 0]  # created, updated, unchanged, turns, feedback
        try:
            with transaction.atomic():
                counts = self._merge(chunk.conversations, lookup=not chunk.prechecked)
                with self.step("finish chunk"):
                    self._finish_chunk(chunk, counts, rejected)
                body_done = time.perf_counter()
            self.timings["commit"] = self.timings.get("commit", 0.0) + time.perf_counter() - body_done
        except (DataError, IntegrityError):
            # A value PostgreSQL refuses (validation let it through): find the record(s) and reject only those.
            # Other database errors (a lost connection) are not about the data and stop the import.
            logger.warning("import %s: a chunk was refused; merging it record by record", self.batch.pk, exc_info=True)
            counts = [0, 0, 0, 0, 0]
            for conv in chunk.conversations:
                try:
                    with transaction.atomic():
                        one = self._merge([conv], lookup=False)
                except (DataError, IntegrityError) as exc:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    rejected.append(Rejected(conv.line, "", f"refused by the database: {reason}", conv.external_id))
                    continue
                counts = [a + b for a, b in zip(counts, one, strict=True)]
            rejected.sort(key=lambda r: r.line)
            with transaction.atomic():
                self._finish_chunk(chunk, counts, rejected)

    def _finish_chunk(self, chunk: Chunk, counts: list[int], rejected: list[Rejected]) -> None:
        b = self.batch
        if rejected and self.rejections_stored < self.max_rejections:
            keep = rejected[: self.max_rejections - self.rejections_stored]
            ImportRejection.objects.bulk_create(
                [
                    ImportRejection(batch=b, line=r.line, field=r.field[:200], reason=r.reason, excerpt=r.excerpt)
                    for r in keep
                ]
            )
            self.rejections_stored += len(keep)
        b.records_read += chunk.records
        b.conversations_created += counts[0]
        b.conversations_updated += counts[1]
        b.conversations_unchanged += counts[2] + chunk.unchanged
        b.turns_written += counts[3]
        b.feedback_written += counts[4]
        b.records_rejected += len(rejected)
        b.bytes_read = max(b.bytes_read, chunk.position)
        b.save(update_fields=PROGRESS_FIELDS)

    def _merge(self, conversations: list[Conversation], *, lookup: bool = True) -> list[int]:
        """Merge ``conversations``; returns [created, updated, unchanged, turns, feedback events] written.

        ``lookup`` first drops the conversations stored with the same content hash; without it they go through
        the upsert, whose ``WHERE content_hash <> ...`` leaves them alone all the same (only slower).
        """
        if not conversations:
            return [0, 0, 0, 0, 0]
        with connection.cursor() as cursor, connection.wrap_database_errors:
            cur = cursor.cursor  # the psycopg cursor, for COPY (errors still come out as Django's)
            existing: dict[tuple[str, str], str] = {}
            if lookup:
                with self.step("lookup"):
                    cur.execute(EXISTING, ([c.source for c in conversations], [c.external_id for c in conversations]))
                    existing = {(s, e): h for s, e, h in cur.fetchall()}
            changed = [c for c in conversations if existing.get((c.source, c.external_id)) != c.content_hash]
            unchanged = len(conversations) - len(changed)
            if not changed:
                return [0, 0, unchanged, 0, 0]
            # Each chunk commits on its own and the batch row records how far the import got: a crash loses at
            # most the last chunk, which a re-run imports again, so the commit need not wait for the WAL flush.
            with self.step("staging set-up"):
                cur.execute("SET LOCAL synchronous_commit TO OFF")
                cur.execute(STAGE_DDL)
                cur.execute("DELETE FROM fh_stage_conv; DELETE FROM fh_stage_turn; DELETE FROM fh_stage_fb")
            with self.step("copy conversations"):
                copy_in(cur, COPY_STAGE_CONV, ((k, *c.row) for k, c in enumerate(changed)))
            with self.step("upsert conversations"):
                cur.execute(UPSERT_CONVERSATIONS, {"config": SEARCH_CONFIG, "batch": self.batch.pk})
                written = {(s, e): (pk, created) for pk, s, e, created in cur.fetchall()}
            created: list[tuple[int, Conversation]] = []
            updated: list[tuple[int, Conversation]] = []
            surplus: list[int] = []
            stale: list[int] = []
            text_changed: list[int] = []
            for c in changed:
                hit = written.get((c.source, c.external_id))
                if hit is None:
                    unchanged += 1  # another import stored the same content meanwhile
                elif hit[1]:
                    created.append((hit[0], c))
                else:
                    updated.append((hit[0], c))
            if created:
                with self.step("copy turns"):
                    copy_in(cur, COPY_TURNS, ((pk, *t) for pk, c in created for t in c.turns))
            if updated:
                with self.step("upsert turns"):
                    copy_in(cur, COPY_STAGE_TURNS, ((pk, *t) for pk, c in updated for t in c.turns))
                    cur.execute(TEXT_CHANGED_TURNS)
                    text_changed = [row[0] for row in cur.fetchall()]
                    cur.execute(UPSERT_TURNS)
                cur.execute(SURPLUS_TURNS, ([pk for pk, _ in updated], [len(c.turns) for _, c in updated]))
                surplus = [row[0] for row in cur.fetchall()]
            feedback_rows = [(pk, *f) for pk, c in (*created, *updated) for f in c.feedback]
            if feedback_rows:
                with self.step("copy feedback"):
                    copy_in(cur, COPY_STAGE_FB, feedback_rows)
            if updated:
                cur.execute(STALE_FEEDBACK, ([pk for pk, _ in updated],))
                stale = [row[0] for row in cur.fetchall()]
            if feedback_rows:
                with self.step("upsert feedback"):
                    cur.execute(UPSERT_FEEDBACK)
        if stale or surplus:
            # Through the ORM so that rows referencing them (here or in other apps) follow their on_delete rules.
            if stale:
                FeedbackEvent.objects.filter(pk__in=stale).delete()
            if surplus:
                Turn.objects.filter(pk__in=surplus).delete()
        if text_changed:
            # Whatever is anchored in the old text follows once this chunk is committed (nothing if it rolls back).
            events.turn_texts_changed.send(sender=Turn, turn_ids=text_changed)
        turns = sum(len(c.turns) for _, c in (*created, *updated))
        return [len(created), len(updated), unchanged, turns, len(feedback_rows)]


PROGRESS_FIELDS = [
    "records_read", "conversations_created", "conversations_updated", "conversations_unchanged", "turns_written",
    "feedback_written", "records_rejected", "bytes_read",
]  # fmt: skip
PROGRESS_SECONDS = 0.5


def run(batch: ImportBatch, f: ImportFile, module: ModuleType, progress: Callable[[ImportBatch], None] | None) -> str:
    """Import ``f`` into ``batch`` (already RUNNING). Returns the file's sha256. Raises FileError for a file-level
    problem; what was merged before it stays."""
    producer = _Producer(f, module, batch.source)
    loader = Loader(batch)
    loader_cpu = time.thread_time()
    producer.start()
    last_progress = 0.0
    try:
        while True:
            with loader.step("waiting for the reader"):
                item = producer.out.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, _Done):
                logger.info(
                    "import %s: %s", batch.pk, ", ".join(f"{k} {v:.2f}s" for k, v in sorted(loader.timings.items()))
                )
                return item.sha256
            with loader.step("merging chunks, in all"):
                loader.merge_chunk(item)
            now = time.monotonic()
            if progress is not None and now - last_progress >= PROGRESS_SECONDS:
                last_progress = now
                progress(batch)
    finally:
        producer.stop.set()
        producer.join(timeout=10)
        # Read by benchmarks: where the wall time went, and each thread's CPU time (not stored).
        batch.import_timings = {  # type: ignore[attr-defined]
            **loader.timings,
            "loader thread CPU": time.thread_time() - loader_cpu,
            "reader thread CPU": getattr(producer, "cpu_seconds", 0.0),
        }


def iter_file(f: ImportFile, module: ModuleType, default_source: str) -> Iterator[Item]:
    """The items a format module yields for ``f`` (no database); for tools and benchmarks."""
    return module.iter_items(f, default_source=default_source)


__all__ = ["COPY_COLUMNS", "Chunk", "FileError", "Loader", "copy_in", "copy_rows", "iter_file", "run"]
