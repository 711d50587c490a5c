"""Loading chunks into the database: COPY into staging, the set-based merge, the batch's counters.

The loader runs on the caller's thread (which owns the Django connection) and merges each chunk in one
transaction:

* conversations stored with the same ``content_hash`` are counted and go no further (the reader may have looked
  them up already, see :mod:`sessions.imports.chunking`; otherwise the loader looks the chunk's keys up first);
* the rest is COPYed into staging and upserted, which tells created from updated;
* turns of created conversations are COPYed straight into the turn table; turns of updated conversations go
  through staging and an upsert that only writes changed rows, and turns beyond the new length are deleted (through
  the ORM, so whatever references them is deleted the way the models say); turns whose text changes are announced
  with ``sessions.events.turn_texts_changed``;
* feedback events go through staging and an upsert; events no longer in an updated record are deleted;
* rejected records of the chunk are stored (up to ``IMPORT_MAX_REJECTIONS_STORED`` per import) and the batch's
  counters are saved, so a browser polling the batch sees progress after every chunk.

If PostgreSQL refuses a chunk, the chunk is merged again one conversation at a time, each in a savepoint, and the
conversations it refuses are rejected with its message: the rest of the chunk still goes in.

Each step of the merge is a function of its own (a psycopg cursor in, rows out), so the import benchmark can time
them (bench/import_timing.py). The SQL is in :mod:`sessions.imports.merge_sql`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from sessions import events
from sessions.imports import merge_sql as sql
from sessions.imports.base import Rejected
from sessions.imports.chunking import Chunk
from sessions.imports.normalise import Conversation
from sessions.imports.runs import import_batch_heartbeat
from sessions.models import SEARCH_CONFIG, FeedbackEvent, ImportBatch, ImportRejection, Turn

logger = logging.getLogger(__name__)

#: The batch counters saved after every chunk.
PROGRESS_FIELDS = [
    "records_read", "conversations_created", "conversations_updated", "conversations_unchanged", "turns_written",
    "feedback_written", "records_rejected", "bytes_read", "heartbeat_at",
]  # fmt: skip

Written = list[tuple[int, Conversation]]  # (conversation id, the conversation merged into it)


def copy_in(cursor: Any, statement: str, rows: Iterable[tuple]) -> None:
    """COPY ``rows`` (plain tuples of str/int/float/bool/None; JSON and arrays as their text) with ``statement``."""
    with cursor.copy(statement) as cp:
        write_row = cp.write_row
        for row in rows:
            write_row(row)


def stored_hashes(cur: Any, conversations: list[Conversation]) -> dict[tuple[str, str], str]:
    """The stored content hash of each of ``conversations`` that is stored, by ``(source, external_id)``."""
    cur.execute(sql.EXISTING, ([c.source for c in conversations], [c.external_id for c in conversations]))
    return {(s, e): h for s, e, h in cur.fetchall()}


def prepare_staging(cur: Any) -> None:
    """Create (once per connection) and empty the staging tables for this chunk's transaction."""
    # Each chunk commits on its own and the batch row records how far the import got: a crash loses at most the
    # last chunk, which a re-run imports again, so the commit need not wait for the WAL flush.
    cur.execute("SET LOCAL synchronous_commit TO OFF")
    cur.execute(sql.STAGE_DDL)
    cur.execute("DELETE FROM fh_stage_conv; DELETE FROM fh_stage_turn; DELETE FROM fh_stage_fb")


def copy_conversations(cur: Any, conversations: list[Conversation]) -> None:
    """Stage ``conversations``, each with its place in the list as ``k``."""
    copy_in(cur, sql.COPY_STAGE_CONV, ((k, *c.row) for k, c in enumerate(conversations)))


def upsert_conversations(cur: Any, *, batch_id: int) -> dict[tuple[str, str], tuple[int, bool]]:
    """Write the staged conversations; returns ``{(source, external_id): (id, created)}`` of those written."""
    cur.execute(sql.UPSERT_CONVERSATIONS, {"config": SEARCH_CONFIG, "batch": batch_id})
    return {(s, e): (pk, created) for pk, s, e, created in cur.fetchall()}


def copy_turns(cur: Any, created: Written) -> None:
    """The turns of newly created conversations, straight into the turn table."""
    copy_in(cur, sql.COPY_TURNS, ((pk, *t) for pk, c in created for t in c.turns))


def upsert_turns(cur: Any, updated: Written) -> list[int]:
    """Write the turns of updated conversations (past the ``stored_turns`` each left as they are); returns the ids of
    the turns whose text changed."""
    copy_in(cur, sql.COPY_STAGE_TURNS, ((pk, *t) for pk, c in updated for t in c.turns[c.stored_turns:]))
    cur.execute(sql.TEXT_CHANGED_TURNS)
    text_changed = [row[0] for row in cur.fetchall()]
    cur.execute(sql.UPSERT_TURNS)
    return text_changed


def surplus_turns(cur: Any, updated: Written) -> list[int]:
    """Ids of the turns beyond the new length of each updated conversation."""
    cur.execute(sql.SURPLUS_TURNS, ([pk for pk, _ in updated], [len(c.turns) for _, c in updated]))
    return [row[0] for row in cur.fetchall()]


def copy_feedback(cur: Any, rows: list[tuple]) -> None:
    """Stage feedback event rows (conversation id first)."""
    copy_in(cur, sql.COPY_STAGE_FB, rows)


def stale_feedback(cur: Any, updated: Written) -> list[int]:
    """Ids of the feedback events of updated conversations that their new record no longer has (after staging)."""
    cur.execute(sql.STALE_FEEDBACK, ([pk for pk, _ in updated],))
    return [row[0] for row in cur.fetchall()]


def upsert_feedback(cur: Any) -> None:
    """Write the staged feedback events."""
    cur.execute(sql.UPSERT_FEEDBACK)


def refresh_feedback_summary(cur: Any, conversation_ids: list[int]) -> None:
    """Recompute the feedback columns of ``conversation_ids`` (``feedback_kinds``, ``has_negative_feedback``) from
    all their stored events."""
    cur.execute(sql.REFRESH_FEEDBACK_SUMMARY, (conversation_ids,))


def with_live_feedback(cur: Any, updated: Written) -> list[int]:
    """The updated conversations that hold feedback events sent live (not part of their record)."""
    cur.execute(sql.WITH_LIVE_FEEDBACK, ([pk for pk, _ in updated],))
    return [row[0] for row in cur.fetchall()]


#: What became of one conversation: created, updated or unchanged (rejected ones are ``Rejected`` records).
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


class Loader:
    """Merges chunks into the database for one ImportBatch (on the calling thread's Django connection).

    ``outcomes``, when given, receives each merged conversation's key ``(source, external_id)`` with what became of
    it (CREATED, UPDATED or UNCHANGED), for callers that answer per record (the ingest API)."""

    def __init__(self, batch: ImportBatch, *, outcomes: dict[tuple[str, str], str] | None = None) -> None:
        self.batch = batch
        self.outcomes = outcomes
        # A resumed import keeps the rejections its earlier runs committed.
        self.rejections_stored = ImportRejection.objects.filter(batch=batch).count()
        self.max_rejections = settings.IMPORT_MAX_REJECTIONS_STORED

    def merge_chunk(self, chunk: Chunk) -> None:
        """Merge one chunk and save the batch counters, in one transaction (savepoint inside an outer one)."""
        rejected = list(chunk.rejected)
        counts = [0, 0, 0, 0, 0]  # created, updated, unchanged, turns, feedback
        try:
            with transaction.atomic():
                counts = self._merge(chunk.conversations, lookup=not chunk.prechecked)
                self._finish_chunk(chunk, counts, rejected)
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
        # Holds the batch row to the commit; a run that lost the batch rolls this chunk back (runs.Superseded).
        import_batch_heartbeat(batch=b)
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
        b.heartbeat_at = timezone.now()
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
            existing = stored_hashes(cur, conversations) if lookup else {}
            changed = [c for c in conversations if existing.get((c.source, c.external_id)) != c.content_hash]
            unchanged = len(conversations) - len(changed)
            if self.outcomes is not None:
                for c in conversations:
                    self.outcomes[c.key] = UNCHANGED
            if not changed:
                return [0, 0, unchanged, 0, 0]
            prepare_staging(cur)
            copy_conversations(cur, changed)
            written = upsert_conversations(cur, batch_id=self.batch.pk)
            created: Written = []
            updated: Written = []
            for c in changed:
                hit = written.get((c.source, c.external_id))
                if hit is None:
                    unchanged += 1  # another import stored the same content meanwhile
                elif hit[1]:
                    created.append((hit[0], c))
                else:
                    updated.append((hit[0], c))
                if hit is not None and self.outcomes is not None:
                    self.outcomes[c.key] = CREATED if hit[1] else UPDATED
            text_changed: list[int] = []
            surplus: list[int] = []
            stale: list[int] = []
            live: list[int] = []
            if created:
                copy_turns(cur, created)
            if updated:
                text_changed = upsert_turns(cur, updated)
                surplus = surplus_turns(cur, updated)
            feedback_rows = [(pk, *f) for pk, c in (*created, *updated) for f in c.feedback]
            if feedback_rows:
                copy_feedback(cur, feedback_rows)
            if updated:
                stale = stale_feedback(cur, updated)
                live = with_live_feedback(cur, updated)
            if feedback_rows:
                upsert_feedback(cur)
        # Through the ORM so that rows referencing them (here or in other apps) follow their on_delete rules.
        if stale:
            FeedbackEvent.objects.filter(pk__in=stale).delete()
        if surplus:
            Turn.objects.filter(pk__in=surplus).delete()
        if live:
            # The record's summary left out the events sent live: count them again.
            with connection.cursor() as cursor:
                refresh_feedback_summary(cursor, live)
        if text_changed:
            # Whatever is anchored in the old text follows once this chunk is committed (nothing if it rolls back).
            events.turn_texts_changed.send(sender=Turn, turn_ids=text_changed)
        turns = sum(len(c.turns) for _, c in (*created, *updated))
        return [len(created), len(updated), unchanged, turns, len(feedback_rows)]
