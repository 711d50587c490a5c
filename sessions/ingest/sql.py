"""The SQL of live ingest: one statement finds each feedback event's turn, stores the new events and updates their
conversations' feedback summary; the OTLP receiver's locks on conversation keys.

Why SQL here rather than the ORM: the feedback endpoint's budget (docs/benchmarks.md, ingest: "Single feedback event,
server time p95", 15 ms) left no room for the ORM's round trips: a turn look-up, a look-up of the events already
stored, a savepoint around the insert (a concurrent duplicate would abort the transaction), a read of the new ids,
and the conversation's update. Here ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` skips events already stored
(idempotency by ``(turn, event_key)``) and says which it stored, and the conversation update reads what it inserted,
in one statement, whatever the number of events.
"""

from __future__ import annotations

from sessions.models import Conversation, FeedbackEvent, Turn

CONV_TABLE = Conversation._meta.db_table
TURN_TABLE = Turn._meta.db_table
FEEDBACK_TABLE = FeedbackEvent._meta.db_table

#: Parameter: a JSON array of events: ``i`` (its place in the request), ``source``, ``external_id`` (the
#: conversation), ``position`` or ``turn_key`` (the turn's id from its record), and the event's columns.
#: Returns a row per event whose turn exists: ``i, turn_id, id`` (``id`` NULL when the event was stored before).
#: The conversations of stored events get their ``feedback_kinds``, ``has_negative_feedback`` and ``updated_at``.
STORE_EVENTS = f"""
WITH ev AS (
    SELECT r.*, t.id AS turn_id, t.conversation_id
    FROM jsonb_to_recordset(%s::jsonb) AS r(i integer, source text, external_id text, position integer,
        turn_key text, event_key text, kind text, rating smallint, categories text[], text text, correction text,
        is_negative boolean, created_at timestamptz, metadata jsonb, origin text, received_at timestamptz)
    CROSS JOIN LATERAL (
        SELECT t.id, t.conversation_id FROM {CONV_TABLE} c JOIN {TURN_TABLE} t ON t.conversation_id = c.id
        WHERE c.source = r.source AND c.external_id = r.external_id
            AND CASE WHEN r.turn_key IS NULL THEN t.position = r.position ELSE t.metadata->>'id' = r.turn_key END
        ORDER BY t.position LIMIT 1) t
), ins AS (
    INSERT INTO {FEEDBACK_TABLE} (conversation_id, turn_id, event_key, kind, rating, categories, text, correction,
        is_negative, created_at, metadata, origin, received_at)
    SELECT conversation_id, turn_id, event_key, kind, rating, categories, text, correction, is_negative,
        COALESCE(created_at, received_at), metadata, origin, received_at
    FROM ev ORDER BY i
    ON CONFLICT (turn_id, event_key) DO NOTHING
    RETURNING id, turn_id, event_key, conversation_id, kind, is_negative
), summary AS (
    UPDATE {CONV_TABLE} c SET
        feedback_kinds = (SELECT array_agg(DISTINCT k ORDER BY k) FROM unnest(c.feedback_kinds || s.kinds) k),
        has_negative_feedback = c.has_negative_feedback OR s.negative, updated_at = statement_timestamp()
    FROM (SELECT conversation_id, array_agg(kind)::varchar(16)[] AS kinds, bool_or(is_negative) AS negative
          FROM ins GROUP BY conversation_id) s
    WHERE c.id = s.conversation_id
)
SELECT ev.i, ev.turn_id, ins.id FROM ev
LEFT JOIN ins ON ins.turn_id = ev.turn_id AND ins.event_key = ev.event_key
ORDER BY ev.i
"""  # noqa: S608 (table names are constants)

#: Transaction-scoped advisory locks on conversation keys (``source`` and ``external_id`` joined by a unit
#: separator), taken in the order given (sorted by the caller: no deadlock). The OTLP receiver holds them while it
#: reads, extends and writes the conversations of an export. Parameter: the keys (text[]).
LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(%s::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n"
)
