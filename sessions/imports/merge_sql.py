"""The SQL of the import merge: staging tables, COPY statements and the set-based upserts.

Why SQL here rather than the ORM: a chunk of up to ``CHUNK_CONVERSATIONS`` conversations (tens of thousands of turns)
is written in a handful of statements. Rows are COPYed into TEMP staging tables, then one ``INSERT ... ON CONFLICT
DO UPDATE ... WHERE <something changed>`` per table writes only what changed, and ``RETURNING (xmax = 0)`` tells a
created conversation from an updated one. The import benchmark (docs/benchmarks.md, import rows) is measured
against a raw COPY of the same rows.

Every statement runs on the loader's psycopg cursor (:mod:`sessions.imports.loading`), inside the chunk's
transaction; the staging tables are ``ON COMMIT DELETE ROWS``, so each chunk starts from empty ones.

The ``CROSS JOIN LATERAL (... LIMIT 1)`` look-ups keep these plans index probes per staged row whatever the table
sizes (a join would let the planner hash or merge the whole table while it is small, and each chunk would scan it
again).
"""

from __future__ import annotations

from collections.abc import Iterable

from sessions.imports.normalise import (
    CONVERSATION_COLUMNS,
    FEEDBACK_COLUMNS,
    SEARCH_TEXT_LIMIT,
    TURN_COLUMNS,
)
from sessions.models import Conversation, FeedbackEvent, Turn

CONV_TABLE = Conversation._meta.db_table
TURN_TABLE = Turn._meta.db_table
FEEDBACK_TABLE = FeedbackEvent._meta.db_table

#: The staging tables (TEMP: each database connection has its own), created once per connection. A staged
#: conversation row carries ``k`` (its place in the chunk) and ``search_text`` (turned into ``search_vector`` by the
#: upsert).
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

#: Writes the staged conversations: new ones are inserted, stored ones updated only when their ``content_hash``
#: differs. Returns ``id, source, external_id, created`` for every row written (an unchanged one returns nothing).
#: Parameters: ``config`` (the text search configuration), ``batch`` (the import batch id).
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
#: Writes the staged turns of updated conversations on ``(conversation, position)``, touching only changed rows.
UPSERT_TURNS = f"""
INSERT INTO {TURN_TABLE} (conversation_id, {", ".join(TURN_COLUMNS)})
SELECT conversation_id, {", ".join(TURN_COLUMNS)} FROM fh_stage_turn
ON CONFLICT (conversation_id, position) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _TURN_VALUE_COLUMNS)}
WHERE ({", ".join(f"{TURN_TABLE}.{c}" for c in _TURN_VALUE_COLUMNS)})
    IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _TURN_VALUE_COLUMNS)})
"""  # noqa: S608 (table and column names are constants)

_FB_VALUE_COLUMNS = ("kind", "rating", "categories", "text", "correction", "is_negative", "created_at", "metadata")
#: Writes the staged feedback events on ``(turn, event_key)``, touching only changed rows; the turn is found by the
#: staged ``(conversation, position)``.
UPSERT_FEEDBACK = f"""
INSERT INTO {FEEDBACK_TABLE} (conversation_id, turn_id, event_key, {", ".join(_FB_VALUE_COLUMNS)})
SELECT s.conversation_id, t.id, s.event_key, {", ".join(f"s.{c}" for c in _FB_VALUE_COLUMNS)}
FROM fh_stage_fb s CROSS JOIN LATERAL (
    SELECT id FROM {TURN_TABLE} WHERE conversation_id = s.conversation_id AND position = s.position LIMIT 1) t
ON CONFLICT (turn_id, event_key) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _FB_VALUE_COLUMNS)}
WHERE ({", ".join(f"{FEEDBACK_TABLE}.{c}" for c in _FB_VALUE_COLUMNS)})
    IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _FB_VALUE_COLUMNS)})
"""  # noqa: S608 (table and column names are constants)

#: Imported feedback events of the given (updated) conversations that the staged rows no longer contain (events
#: sent live, through the feedback API or the widget, are not part of the record and stay).
#: Parameter: the conversation ids (bigint[]).
STALE_FEEDBACK = f"""
SELECT f.id FROM unnest(%s::bigint[]) AS u(id)
CROSS JOIN LATERAL (
    SELECT id, turn_id, event_key FROM {FEEDBACK_TABLE} WHERE conversation_id = u.id AND origin = 'import') f
CROSS JOIN LATERAL (SELECT position FROM {TURN_TABLE} WHERE id = f.turn_id) t
WHERE NOT EXISTS (
    SELECT 1 FROM fh_stage_fb s
    WHERE s.conversation_id = u.id AND s.position = t.position AND s.event_key = f.event_key)
"""  # noqa: S608 (table and column names are constants)

#: Recomputes the denormalised feedback columns of the given conversations from all their events (an updated record
#: replaces them with its own events' summary; events sent live must count too). Parameter: conversation ids.
REFRESH_FEEDBACK_SUMMARY = f"""
UPDATE {CONV_TABLE} c SET feedback_kinds = s.kinds, has_negative_feedback = s.negative
FROM (
    SELECT u.id,
        COALESCE(array_agg(DISTINCT f.kind ORDER BY f.kind) FILTER (WHERE f.kind IS NOT NULL), '{{}}') kinds,
        COALESCE(bool_or(f.is_negative), false) negative
    FROM unnest(%s::bigint[]) AS u(id) LEFT JOIN {FEEDBACK_TABLE} f ON f.conversation_id = u.id
    GROUP BY u.id
) s
WHERE c.id = s.id AND (c.feedback_kinds, c.has_negative_feedback) IS DISTINCT FROM (s.kinds, s.negative)
"""  # noqa: S608 (table and column names are constants)

#: Updated conversations that hold events sent live. Parameter: conversation ids (bigint[]).
WITH_LIVE_FEEDBACK = f"""
SELECT u.id FROM unnest(%s::bigint[]) AS u(id)
WHERE EXISTS (SELECT 1 FROM {FEEDBACK_TABLE} f WHERE f.conversation_id = u.id AND f.origin <> 'import')
"""  # noqa: S608 (table and column names are constants)

#: Appends: each conversation's state as an appender needs it, without reading its turns back. Parameters: sources
#: (text[]), external ids (text[]), and the span ids and tool-call ids the request brings (text[], text[]). Returns
#: id, source, external_id, turn_count, content_hash, title, metadata, and of its turns: the last one's
#: ``metadata->otel->sort``, which of the given span and tool-call ids they hold already, and their text joined
#: while it is shorter than the search text's limit (NULL when it is not: new turns then leave the search text alone).
APPEND_STATE = f"""
SELECT c.id, c.source, c.external_id, c.turn_count, c.content_hash, c.title, c.metadata, t.last_sort, t.span_ids,
    t.tool_ids, CASE WHEN t.text_length < {SEARCH_TEXT_LIMIT} THEN COALESCE(t.text, '') END
FROM unnest(%s::text[], %s::text[]) AS k(source, external_id)
CROSS JOIN LATERAL (
    SELECT id, source, external_id, turn_count, content_hash, title, metadata FROM {CONV_TABLE}
    WHERE source = k.source AND external_id = k.external_id LIMIT 1) c
CROSS JOIN LATERAL (
    SELECT (array_agg(metadata->'otel'->'sort' ORDER BY position DESC))[1] AS last_sort,
        array_agg(metadata->'otel'->>'span_id') FILTER (WHERE metadata->'otel'->>'span_id' = ANY(%s::text[]))
            AS span_ids,
        array_agg(metadata->'otel'->'tool'->>'call_id')
            FILTER (WHERE metadata->'otel'->'tool'->>'call_id' = ANY(%s::text[])) AS tool_ids,
        COALESCE(sum(length(content)), 0) AS text_length,
        string_agg(content, chr(10) ORDER BY position) FILTER (WHERE content <> '') AS text
    FROM {TURN_TABLE} WHERE conversation_id = c.id) t
"""  # noqa: S608 (table and column names are constants)

#: Appends: the conversations' new columns, after their new turns are COPYed in. Parameters: ``config``, ``batch``,
#: and the arrays ids, content hashes, turn counts, model versions, metadata (jsonb as text; NULL keeps it), ended_at,
#: titles and search texts (NULL keeps them).
APPEND_CONVERSATIONS = f"""
UPDATE {CONV_TABLE} c SET content_hash = u.content_hash, turn_count = u.turn_count,
    model_version = CASE WHEN u.model_version <> '' THEN u.model_version ELSE c.model_version END,
    metadata = COALESCE(u.metadata::jsonb, c.metadata), ended_at = GREATEST(c.ended_at, u.ended_at),
    updated_at = statement_timestamp(), last_import_id = %(batch)s, title = COALESCE(u.title, c.title),
    search_vector = CASE WHEN u.search_text IS NULL THEN c.search_vector
                         ELSE to_tsvector(%(config)s::regconfig, u.search_text) END
FROM unnest(%(ids)s::bigint[], %(hashes)s::text[], %(counts)s::integer[], %(models)s::text[], %(metadata)s::text[],
            %(ended)s::timestamptz[], %(titles)s::text[], %(search)s::text[])
    AS u(id, content_hash, turn_count, model_version, metadata, ended_at, title, search_text)
WHERE c.id = u.id
"""  # noqa: S608 (table and column names are constants)

#: Turns whose text the staged rows change; run after the turns are staged and before the upsert writes them.
TEXT_CHANGED_TURNS = f"""
SELECT t.id FROM fh_stage_turn s
CROSS JOIN LATERAL (
    SELECT id, content FROM {TURN_TABLE} WHERE conversation_id = s.conversation_id AND position = s.position LIMIT 1) t
WHERE t.content IS DISTINCT FROM s.content
"""  # noqa: S608 (table and column names are constants)

#: Turns beyond a conversation's new length. Parameters: the conversation ids (bigint[]), their turn counts (int[]).
SURPLUS_TURNS = f"""
SELECT t.id FROM unnest(%s::bigint[], %s::integer[]) AS u(id, n)
CROSS JOIN LATERAL (SELECT id FROM {TURN_TABLE} WHERE conversation_id = u.id AND position >= u.n) t
"""  # noqa: S608 (table and column names are constants)

#: The stored content hash of each ``(source, external_id)`` key. Parameters: sources (text[]), external ids (text[]).
EXISTING = f"""
SELECT k.source, k.external_id, c.content_hash FROM unnest(%s::text[], %s::text[]) AS k(source, external_id)
CROSS JOIN LATERAL (
    SELECT content_hash FROM {CONV_TABLE} WHERE source = k.source AND external_id = k.external_id LIMIT 1) c
"""  # noqa: S608 (table and column names are constants)


#: The columns each COPY loads, in the order of the rows the loader writes (``conversation`` rows are staged with
#: their place ``k`` in the chunk; the upsert turns their ``search_text`` into ``search_vector``).
COPY_COLUMNS = {
    "conversation": ("k", *CONVERSATION_COLUMNS),
    "turn": ("conversation_id", *TURN_COLUMNS),
    "feedback": ("conversation_id", *FEEDBACK_COLUMNS),
}


def _copy_sql(table: str, columns: Iterable[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN"


#: Staged conversations of the chunk.
COPY_STAGE_CONV = _copy_sql("fh_stage_conv", COPY_COLUMNS["conversation"])
#: Turns of created conversations, straight into the turn table (nothing to merge with).
COPY_TURNS = _copy_sql(TURN_TABLE, COPY_COLUMNS["turn"])
#: Staged turns of updated conversations.
COPY_STAGE_TURNS = _copy_sql("fh_stage_turn", COPY_COLUMNS["turn"])
#: Staged feedback events of created and updated conversations.
COPY_STAGE_FB = _copy_sql("fh_stage_fb", COPY_COLUMNS["feedback"])
