"""The list benchmark's data set: a million conversations loaded with set-based SQL, kept between runs.

Rows are made by ``generate_series`` and hashes of the row number, so the same size always gives the same data
and nothing passes through Python. Every conversation gets a user turn and a model turn; the feedback events on
the model turn match the denormalised ``feedback_kinds`` / ``has_negative_feedback`` columns, with selectivities
close to production logs (about a third of conversations carry some feedback, a fifth something negative).

A marker table ``bench_dataset`` records what was loaded (size, generator version and the applied migrations of
the conversations app); a later run reuses the data when the marker matches and rebuilds it otherwise.
Secondary indexes are dropped during the load and rebuilt after it, which is several times faster than
maintaining them row by row.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from bench.datagen import DOMAINS, MODEL_VERSIONS, SENTENCES

DATASET_VERSION = 1
TEXT_VARIANTS = 2000
CHUNK = 100_000
EPOCH = "2023-01-01 00:00:00+00"
ENVIRONMENTS = ("prod",) * 7 + ("test",) * 2 + ("dev",)
USER_ROLES = ("customer", "employee", "developer", "premium_customer", "guest", "agent")
# Skewed like a real fleet: most traffic on two versions, a long tail on the others.
MODEL_WEIGHTS = (35, 30, 15, 10, 6, 4)
APP_VERSIONS = ("prompt-v12", "prompt-v13", "prompt-v14", "app-2.3.0", "app-2.4.1")
NEGATIVE_SQL_KINDS = ("thumbs_down", "correction", "abandon", "regenerate", "rephrase")

Log = Callable[[str], None]


def _tables() -> dict[str, str]:
    from sessions.models import Conversation, FeedbackEvent, Turn  # noqa: PLC0415

    return {
        "conversation": Conversation._meta.db_table,
        "turn": Turn._meta.db_table,
        "feedback": FeedbackEvent._meta.db_table,
    }


def _sql_array(values: tuple[str, ...] | list[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]::text[]"


def _weighted_array(values: tuple[str, ...] | list[str], weights: tuple[int, ...]) -> str:
    expanded: list[str] = []
    for value, weight in zip(values, weights, strict=True):
        expanded.extend([value] * weight)
    return _sql_array(expanded)


def _spec(cursor: Any, count: int) -> dict[str, Any]:
    cursor.execute("SELECT name FROM django_migrations WHERE app = 'conversations' ORDER BY name")
    migrations = [row[0] for row in cursor.fetchall()]
    return {"count": count, "version": DATASET_VERSION, "migrations": migrations}


def _current_spec(cursor: Any) -> dict[str, Any] | None:
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS bench_dataset (name text PRIMARY KEY, spec jsonb NOT NULL, "
        "loaded_at timestamptz NOT NULL DEFAULT now(), load_seconds double precision)"
    )
    cursor.execute("SELECT spec FROM bench_dataset WHERE name = 'list'")
    row = cursor.fetchone()
    if row is None:
        return None
    # Django's psycopg set-up hands jsonb back as text.
    spec = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return spec if isinstance(spec, dict) else None


def _text_variants() -> list[tuple[int, str, str, str]]:
    """(k, domain, title, reply) combinations: titles are real first queries, replies a few sentences."""
    rng = random.Random(11)
    queries = [(name, q) for name, domain in DOMAINS.items() for q in domain["queries"]]
    rows = []
    for k in range(TEXT_VARIANTS):
        domain, query = queries[k % len(queries)]
        title = query if rng.random() < 0.7 else f"{query} {rng.choice(SENTENCES)}"
        reply = " ".join(rng.choices(SENTENCES, k=rng.randint(2, 4)))
        rows.append((k, domain, title[:200], reply))
    return rows


def _secondary_indexes(cursor: Any, tables: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the indexes on ``tables`` that do not back a constraint."""
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = ANY(%s) AND t.relnamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname
        """,
        [tables],
    )
    return [(name, ddl) for name, ddl in cursor.fetchall()]


def ensure_dataset(count: int, log: Log = print) -> dict[str, Any]:
    """Make sure the current database holds the list data set of ``count`` conversations; reuse it if it does.

    Returns {"reused": bool, "load_seconds": float | None, "conversations", "turns", "feedback"}.
    Precondition: Django is set up on the benchmark database (this empties the conversation tables).
    """
    from django.db import connection  # noqa: PLC0415

    tables = _tables()
    with connection.cursor() as cursor:
        wanted = _spec(cursor, count)
        if _current_spec(cursor) == wanted:
            cursor.execute("SELECT load_seconds FROM bench_dataset WHERE name = 'list'")
            load_seconds = cursor.fetchone()[0]
            counts = _counts(cursor, tables, count)
            if counts["conversations"] == count:
                log(f"list data set of {count:,} conversations found; reusing it")
                return {"reused": True, "load_seconds": load_seconds, **counts}
    started = time.perf_counter()
    _load(count, tables, log)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_dataset (name, spec, load_seconds) VALUES ('list', %s::jsonb, %s) "
            "ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, loaded_at = now(), "
            "load_seconds = EXCLUDED.load_seconds",
            [json.dumps(wanted), seconds],
        )
        counts = _counts(cursor, tables, count)
    log(f"loaded {count:,} conversations in {seconds:.1f} s")
    return {"reused": False, "load_seconds": seconds, **counts}


def _counts(cursor: Any, tables: dict[str, str], count: int) -> dict[str, int]:
    """Rows of the data set, which owns ids 1..count; other benchmarks may add rows of their own after those."""
    # Exact counts on purpose: this runs once per benchmark, never on a page.
    out = {}
    for key, table, where in (
        ("conversations", "conversation", f"id <= {int(count)} AND external_id LIKE 'bench-%%'"),
        ("turns", "turn", f"conversation_id <= {int(count)}"),
        ("feedback", "feedback", f"conversation_id <= {int(count)}"),
    ):
        cursor.execute(f'SELECT count(*) FROM "{tables[table]}" WHERE {where}', [])
        out[key] = cursor.fetchone()[0]
    return out


def _load(count: int, tables: dict[str, str], log: Log) -> None:
    from django.db import connection, transaction  # noqa: PLC0415

    conv, turn, feedback = tables["conversation"], tables["turn"], tables["feedback"]
    with transaction.atomic(), connection.cursor() as cursor:
        log(f"building the list data set: {count:,} conversations (one-off; later runs reuse it)")
        cursor.execute("DELETE FROM bench_dataset WHERE name = 'list'")
        cursor.execute(f'TRUNCATE "{conv}", "{turn}", "{feedback}" RESTART IDENTITY CASCADE')
        indexes = _secondary_indexes(cursor, [conv, turn, feedback])
        for name, _ddl in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("DROP TABLE IF EXISTS bench_texts")
        cursor.execute(
            "CREATE TABLE bench_texts (k int PRIMARY KEY, domain text NOT NULL, title text NOT NULL, "
            "reply text NOT NULL, tsv tsvector)"
        )
        with cursor.connection.cursor().copy("COPY bench_texts (k, domain, title, reply) FROM STDIN") as copy:
            for row in _text_variants():
                copy.write_row(row)
        from sessions.models import SEARCH_CONFIG  # noqa: PLC0415

        cursor.execute(
            "UPDATE bench_texts SET tsv = to_tsvector(%s::regconfig, title || ' ' || reply)", [SEARCH_CONFIG]
        )
        for low in range(1, count + 1, CHUNK):
            high = min(count, low + CHUNK - 1)
            _insert_chunk(cursor, conv, turn, feedback, low, high)
            log(f"  rows {high:,} / {count:,}")
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{conv}\"', 'id'), %s)", [max(count, 1)])
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{turn}\"', 'id'), %s)", [max(2 * count, 1)])
        # Django's foreign keys are deferred; check them now, since an index cannot be built with checks pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        log(f"  rebuilding {len(indexes)} indexes")
        for _name, ddl in indexes:
            cursor.execute(ddl)
    with connection.cursor() as cursor:
        log("  ANALYZE")
        for table in (conv, turn, feedback):
            cursor.execute(f'VACUUM ANALYZE "{table}"')


def _h(expr: str, salt: int) -> str:
    """SQL for a non-negative pseudo-random bigint of ``expr`` and ``salt`` (same inputs, same value)."""
    return f"(hashint8extended({expr}, {salt}) & 9223372036854775807)"


def _insert_chunk(cursor: Any, conv: str, turn: str, feedback: str, low: int, high: int) -> None:
    envs = _sql_array(ENVIRONMENTS)
    roles = _sql_array(USER_ROLES)
    models = _weighted_array(MODEL_VERSIONS, MODEL_WEIGHTS)
    apps = _sql_array(APP_VERSIONS)
    negative = _sql_array(NEGATIVE_SQL_KINDS)
    # No query parameters: the SQL uses % as the modulo operator. low/high are ints.
    # h(n) = a non-negative pseudo-random bigint per row and salt n; the same row always gets the same values.
    cursor.execute(
        f"""
        INSERT INTO "{conv}" (id, source, external_id, content_hash, title, end_user_id, user_role, environment,
            model_version, app_version, started_at, ended_at, metadata, turn_count, feedback_kinds,
            has_negative_feedback, search_vector, imported_at, updated_at, last_import_id)
        SELECT g.i, t.domain, 'bench-' || g.i, md5(g.i::text), t.title, 'u-' || (h.h2 % 50000),
            ({roles})[1 + h.h3 % {len(USER_ROLES)}], ({envs})[1 + h.h4 % {len(ENVIRONMENTS)}],
            ({models})[1 + h.h5 % {sum(MODEL_WEIGHTS)}], ({apps})[1 + h.h6 % {len(APP_VERSIONS)}],
            s.started, s.started + make_interval(secs => 20 + h.h7 % 900),
            jsonb_build_object('domain', t.domain, 'channel', (ARRAY['web','ios','android','ide'])[1 + h.h7 % 4]),
            2, k.kinds, k.kinds::text[] && {negative} OR k.low_rating,
            t.tsv, now(), now(), NULL
        FROM generate_series({int(low)}::bigint, {int(high)}::bigint) AS g(i)
        CROSS JOIN LATERAL (
            SELECT {_h("g.i", 1)} AS h1, {_h("g.i", 2)} AS h2, {_h("g.i", 3)} AS h3, {_h("g.i", 4)} AS h4,
                   {_h("g.i", 5)} AS h5, {_h("g.i", 6)} AS h6, {_h("g.i", 7)} AS h7, {_h("g.i", 8)} AS f
        ) h
        CROSS JOIN LATERAL (
            SELECT timestamptz '{EPOCH}' + make_interval(mins => g.i::int, secs => h.h7 % 50) AS started
        ) s
        CROSS JOIN LATERAL (
            SELECT array_remove(ARRAY[
                CASE WHEN h.f % 100 < 12 THEN 'thumbs_up' END,
                CASE WHEN h.f / 100 % 100 < 7 THEN 'thumbs_down' END,
                CASE WHEN h.f / 10000 % 100 < 5 THEN 'rating' END,
                CASE WHEN h.f / 1000000 % 1000 < 15 THEN 'correction' END,
                CASE WHEN h.f / 1000000000 % 100 < 10 THEN 'copy' END,
                CASE WHEN h.f / 100000000000 % 100 < 6 THEN 'regenerate' END,
                CASE WHEN h.f / 10000000000000 % 100 < 5 THEN 'rephrase' END,
                CASE WHEN h.f / 1000000000000000 % 100 < 4 THEN 'abandon' END
            ]::varchar[], NULL) AS kinds,
            h.f / 10000 % 100 < 5 AND 1 + h.f / 100000000000000000 % 5 <= 2 AS low_rating
        ) k
        JOIN bench_texts t ON t.k = h.h1 % {TEXT_VARIANTS}
        """
    )
    cursor.execute(
        f"""
        INSERT INTO "{turn}" (id, conversation_id, position, role, content, created_at, latency_ms, prompt_tokens,
            completion_tokens, model_version, confidence, system_prompt, retrieved_documents, tool_calls, metadata)
        SELECT 2 * c.id - 1 + p.position, c.id, p.position, p.role,
            CASE WHEN p.position = 0 THEN c.title ELSE t.reply END,
            c.started_at + make_interval(secs => p.position * 3),
            CASE WHEN p.position = 1 THEN 400 + c.id % 5000 END,
            CASE WHEN p.position = 1 THEN 300 + c.id % 700 END,
            CASE WHEN p.position = 1 THEN length(t.reply) / 4 END,
            CASE WHEN p.position = 1 THEN c.model_version ELSE '' END,
            CASE WHEN p.position = 1 THEN (c.id % 60) / 100.0 + 0.4 END,
            '', '[]'::jsonb, '[]'::jsonb, '{{}}'::jsonb
        FROM "{conv}" c
        JOIN bench_texts t ON t.k = {_h("c.id", 1)} % {TEXT_VARIANTS}
        CROSS JOIN (VALUES (0, 'user'), (1, 'assistant')) AS p(position, role)
        WHERE c.id BETWEEN {int(low)} AND {int(high)}
        """
    )
    cursor.execute(
        f"""
        INSERT INTO "{feedback}" (conversation_id, turn_id, event_key, kind, rating, categories, text, correction,
            is_negative, created_at, metadata)
        SELECT c.id, 2 * c.id, kind, kind,
            CASE WHEN kind = 'rating' THEN 1 + {_h("c.id", 8)} / 100000000000000000 % 5 END,
            CASE WHEN kind = 'thumbs_down' AND c.id % 2 = 0 THEN ARRAY['too vague']::varchar[]
                 ELSE ARRAY[]::varchar[] END,
            '', CASE WHEN kind = 'correction' THEN 'The fee on my plan is 2 EUR, not 5 EUR.' ELSE '' END,
            kind = ANY({negative})
                OR (kind = 'rating' AND 1 + {_h("c.id", 8)} / 100000000000000000 % 5 <= 2),
            c.started_at + interval '1 minute', '{{}}'::jsonb
        FROM "{conv}" c CROSS JOIN LATERAL unnest(c.feedback_kinds) AS kind
        WHERE c.id BETWEEN {int(low)} AND {int(high)}
        """
    )
