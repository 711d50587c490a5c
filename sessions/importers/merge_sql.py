"""The import pipeline's set-based SQL: the staging tables, the COPY statements, and the merge of a staged chunk
into conversations, turns and feedback events (insert new, update changed, find stale and surplus rows).

Table and column names come from the models and ``normalise``'s column lists, never from input; values are always
query parameters or COPY data. Each statement's comment says what it does and why it is shaped so.
"""

# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable

from sessions.importers.normalise import CONVERSATION_COLUMNS, FEEDBACK_COLUMNS, TURN_COLUMNS
from sessions.models import Conversation as ConversationModel
from sessions.models import FeedbackEvent, Turn

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
