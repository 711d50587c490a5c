"""Insights dashboard: server time of the analytics page at 1M turns and 100k feedback events, with and without
filters, reading the daily rollup.

A data set of its own (database ``feedbackhub_bench_insights``): 250,000 sessions of four turns (1,000,000 turns)
over one year, and 100,000 feedback events of every kind, with the dimensions skewed like the list benchmark's
(six model versions, three environments, six user roles, five app versions). It is built with set-based SQL, kept
between runs (a marker table records its size, version and the session tables' migrations), and the rollup is rebuilt
from it once per run; the rebuild and the refresh of one day are timed too.

The page's body is cached for a minute per filter set and rollup refresh; requests are timed as served (mostly
from that cache) and, separately, "cold" with the cache switched off. Before timing, each request's totals are
checked against the same figures aggregated straight from the session
tables, so a filter the dashboard ignored cannot pass as a fast one. Each combination is requested through Django's
test client (middleware, login, CSP, template rendering, DEBUG off), after untimed warm-ups, ``n`` times per round,
rounds interleaved across combinations.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from bench import common, list_data
from bench.datagen import MODEL_VERSIONS

NAME = "dashboard"
TITLE = "Insights dashboard at 1M turns and 100k feedback events"
FULL_SESSIONS = 250_000
QUICK_SESSIONS = 5_000
TURNS_PER_SESSION = 4
FEEDBACK_SHARE = 0.4  # of sessions, one event each: 100k events at full size
FULL_N = 40
QUICK_N = 5
WARMUP = 3
TARGET_P95_MS = 200.0
DATASET_VERSION = 1
DB_SUFFIX = "_insights"
EPOCH = "2025-01-01 00:00:00+00"
DAYS = 365
KIND_WEIGHTS = {
    "thumbs_up": 20, "thumbs_down": 15, "rating": 8, "category": 5, "comment": 5, "correction": 4, "copy": 18,
    "abandon": 8, "regenerate": 10, "rephrase": 7,
}  # fmt: skip
NEGATIVE = ("thumbs_down", "correction", "abandon", "regenerate", "rephrase")
CATEGORIES = ("too vague", "wrong answer", "outdated", "off topic", "rude", "too long")
USERNAME = "bench-insights"
TOTAL = re.compile(r'data-total="(\w+)">(\d+)<')


def database_url(quick: bool) -> str:
    url = common.database_url(quick=quick)
    parts = urlsplit(url)
    name = parts.path.lstrip("/").replace(common.BENCH_DB_NAME, common.BENCH_DB_NAME + DB_SUFFIX, 1)
    return urlunsplit(parts._replace(path=f"/{name}"))


# --- data set ----------------------------------------------------------------------------------------------------


def _spec(cursor: Any, sessions: int) -> dict[str, Any]:
    # The session tables' migrations only: the rollup is rebuilt on every run anyway.
    cursor.execute("SELECT app, name FROM django_migrations WHERE app = 'conversations' ORDER BY 1, 2")
    return {"sessions": sessions, "version": DATASET_VERSION, "migrations": [f"{a}.{n}" for a, n in cursor.fetchall()]}


def ensure_dataset(sessions: int, log: Any) -> dict[str, Any]:
    """Build (or reuse) the data set; returns counts and whether it was reused."""
    from django.db import connection, transaction  # noqa: PLC0415

    from sessions.models import Conversation, FeedbackEvent, Turn  # noqa: PLC0415

    conv, turn, feedback = (m._meta.db_table for m in (Conversation, Turn, FeedbackEvent))
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset (name text PRIMARY KEY, spec jsonb NOT NULL, "
            "loaded_at timestamptz NOT NULL DEFAULT now(), load_seconds double precision)"
        )
        wanted = _spec(cursor, sessions)
        cursor.execute("SELECT spec, load_seconds FROM bench_dataset WHERE name = 'insights'")
        row = cursor.fetchone()
        spec = (json.loads(row[0]) if isinstance(row[0], str) else row[0]) if row else None
        if spec == wanted:
            log(f"insights data set of {sessions:,} sessions found; reusing it")
            return {"reused": True, "load_seconds": row[1], **_counts(cursor, conv, turn, feedback)}
    started = time.perf_counter()
    log(f"building the insights data set: {sessions:,} sessions, {sessions * TURNS_PER_SESSION:,} turns")
    envs = list_data._sql_array(list_data.ENVIRONMENTS)
    roles = list_data._sql_array(list_data.USER_ROLES)
    models = list_data._weighted_array(MODEL_VERSIONS, list_data.MODEL_WEIGHTS)
    apps = list_data._sql_array(list_data.APP_VERSIONS)
    kinds = list_data._weighted_array(list(KIND_WEIGHTS), tuple(KIND_WEIGHTS.values()))
    negative = list_data._sql_array(NEGATIVE)
    cats = list_data._sql_array(CATEGORIES)
    h = list_data._h
    minutes_per_session = DAYS * 1440 / sessions
    feedback_cut = int(FEEDBACK_SHARE * 1000)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM bench_dataset WHERE name = 'insights'")
        cursor.execute(f'TRUNCATE "{conv}", "{turn}", "{feedback}" RESTART IDENTITY CASCADE')
        # One event per feedback-carrying session: its kind decides the session's denormalised columns.
        cursor.execute(
            f"""
            CREATE TEMP TABLE bench_fb ON COMMIT DROP AS
            SELECT g.i AS id, ({kinds})[1 + {h("g.i", 21)} % {sum(KIND_WEIGHTS.values())}] AS kind,
                   1 + {h("g.i", 22)} % 5 AS rating, ({cats})[1 + {h("g.i", 23)} % {len(CATEGORIES)}] AS category
            FROM generate_series(1, {int(sessions)}) g(i)
            WHERE {h("g.i", 20)} % 1000 < {feedback_cut}
            """
        )
        cursor.execute("CREATE UNIQUE INDEX ON bench_fb (id)")
        cursor.execute(
            f"""
            INSERT INTO "{conv}" (id, source, external_id, content_hash, title, end_user_id, user_role, environment,
                model_version, app_version, started_at, ended_at, metadata, turn_count, feedback_kinds,
                has_negative_feedback, search_vector, imported_at, updated_at, last_import_id)
            SELECT g.i, 'bench-insights', 'ins-' || g.i, md5(g.i::text), 'Session ' || g.i, 'u-' || g.i % 5000,
                ({roles})[1 + {h("g.i", 3)} % {len(list_data.USER_ROLES)}],
                ({envs})[1 + {h("g.i", 4)} % {len(list_data.ENVIRONMENTS)}],
                ({models})[1 + {h("g.i", 5)} % {sum(list_data.MODEL_WEIGHTS)}],
                ({apps})[1 + {h("g.i", 6)} % {len(list_data.APP_VERSIONS)}],
                s.started, s.started + interval '5 minutes', '{{}}'::jsonb, {TURNS_PER_SESSION},
                CASE WHEN f.kind IS NULL THEN ARRAY[]::varchar[] ELSE ARRAY[f.kind]::varchar[] END,
                coalesce(f.kind = ANY({negative}) OR (f.kind = 'rating' AND f.rating <= 2), false),
                NULL, now(), now(), NULL
            FROM generate_series(1, {int(sessions)}) g(i)
            CROSS JOIN LATERAL (
                SELECT timestamptz '{EPOCH}' + make_interval(secs => (g.i * {minutes_per_session} * 60)::int) AS started
            ) s
            LEFT JOIN bench_fb f ON f.id = g.i
            """
        )
        cursor.execute(
            f"""
            INSERT INTO "{turn}" (id, conversation_id, position, role, content, created_at, model_version,
                system_prompt, retrieved_documents, tool_calls, metadata)
            SELECT (c.id - 1) * {TURNS_PER_SESSION} + p + 1, c.id, p,
                CASE WHEN p % 2 = 0 THEN 'user' ELSE 'assistant' END,
                CASE WHEN p % 2 = 0 THEN 'Question ' || p ELSE 'Answer ' || p END,
                c.started_at + make_interval(secs => p * 20), CASE WHEN p % 2 = 1 THEN c.model_version ELSE '' END,
                '', '[]'::jsonb, '[]'::jsonb, '{{}}'::jsonb
            FROM "{conv}" c CROSS JOIN generate_series(0, {TURNS_PER_SESSION - 1}) p
            """
        )
        cursor.execute(
            f"""
            INSERT INTO "{feedback}" (conversation_id, turn_id, event_key, kind, rating, categories, text, correction,
                is_negative, created_at, metadata)
            SELECT f.id, (f.id - 1) * {TURNS_PER_SESSION} + 2, 'ev-' || f.id, f.kind,
                CASE WHEN f.kind = 'rating' THEN f.rating END,
                CASE WHEN f.kind IN ('thumbs_down', 'category') THEN ARRAY[f.category]::varchar[]
                     ELSE ARRAY[]::varchar[] END,
                '', CASE WHEN f.kind = 'correction' THEN 'Corrected.' ELSE '' END,
                f.kind = ANY({negative}) OR (f.kind = 'rating' AND f.rating <= 2),
                c.started_at + interval '1 minute', '{{}}'::jsonb
            FROM bench_fb f JOIN "{conv}" c ON c.id = f.id
            """
        )
        for table, column in ((conv, "id"), (turn, "id"), (feedback, "id")):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
                           f"(SELECT coalesce(max(id), 1) FROM \"{table}\"))")
    with connection.cursor() as cursor:
        for table in (conv, turn, feedback):
            cursor.execute(f'VACUUM ANALYZE "{table}"')
        seconds = time.perf_counter() - started
        cursor.execute(
            "INSERT INTO bench_dataset (name, spec, load_seconds) VALUES ('insights', %s::jsonb, %s) "
            "ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, loaded_at = now(), "
            "load_seconds = EXCLUDED.load_seconds",
            [json.dumps(wanted), seconds],
        )
        counts = _counts(cursor, conv, turn, feedback)
    log(f"loaded in {seconds:.1f} s: {counts}")
    return {"reused": False, "load_seconds": seconds, **counts}


def _counts(cursor: Any, conv: str, turn: str, feedback: str) -> dict[str, int]:
    # Exact counts on purpose: once per benchmark run, never on a page.
    out = {}
    for key, table in (("sessions", conv), ("turns", turn), ("feedback", feedback)):
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        out[key] = cursor.fetchone()[0]
    return out


# --- requests ----------------------------------------------------------------------------------------------------


@dataclass
class Combo:
    name: str
    params: dict[str, str]
    url: str = ""
    times_ms: list[float] = field(default_factory=list)
    cold_ms: list[float] = field(default_factory=list)
    queries: int | None = None
    verified: str = "not checked"


def combos(last_day: dt.date) -> list[Combo]:
    year_start = (last_day - dt.timedelta(days=DAYS - 1)).isoformat()
    month_start = (last_day - dt.timedelta(days=29)).isoformat()
    models = MODEL_VERSIONS
    return [
        Combo("no filter (last 90 days, by day)", {}),
        Combo("whole year (by week)", {"date_from": year_start, "date_to": last_day.isoformat()}),
        Combo("environment = prod, role = customer", {"environment": "prod", "user_role": "customer"}),
        Combo("app version + split by user role", {"app_version": "prompt-v13", "split": "user_role"}),
        Combo("30 days, env = test, A/B picked", {"date_from": month_start, "date_to": last_day.isoformat(),
                                                  "environment": "test", "model_a": models[2], "model_b": models[3]}),
        Combo("whole year, split by environment, role = agent", {
            "date_from": year_start, "date_to": last_day.isoformat(), "split": "environment", "user_role": "agent"}),
    ]


def _direct_totals(params: dict[str, str], last_day: dt.date) -> dict[str, int]:
    """Sessions, turns and feedback events straight from the session tables for the same filters (the dashboard's
    default range: the 90 days ending on the newest day)."""
    from django.db import connection  # noqa: PLC0415

    from sessions.models import Conversation, FeedbackEvent  # noqa: PLC0415

    date_to = dt.date.fromisoformat(params["date_to"]) if "date_to" in params else last_day
    date_from = dt.date.fromisoformat(params["date_from"]) if "date_from" in params else date_to - dt.timedelta(89)
    conds = ["c.started_at >= (%s::timestamp AT TIME ZONE 'UTC')", "c.started_at < (%s::timestamp AT TIME ZONE 'UTC')"]
    args: list[Any] = [date_from, date_to + dt.timedelta(days=1)]
    for name in ("environment", "user_role", "app_version"):
        if params.get(name):
            conds.append(f"c.{name} = %s")
            args.append(params[name])
    where = " AND ".join(conds)
    conv, fb = Conversation._meta.db_table, FeedbackEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT count(*), coalesce(sum(c.turn_count), 0) FROM "{conv}" c WHERE {where}', args
        )
        sessions, turns = cursor.fetchone()
        cursor.execute(f'SELECT count(*) FROM "{fb}" f JOIN "{conv}" c ON c.id = f.conversation_id WHERE {where}', args)
        events = cursor.fetchone()[0]
    return {"sessions": sessions, "turns": int(turns), "feedback": events}


def run(ctx: common.Context) -> dict[str, Any]:
    sessions = QUICK_SESSIONS if ctx.quick else FULL_SESSIONS
    n = QUICK_N if ctx.quick else FULL_N
    db_url = database_url(ctx.quick)
    ctx.log(f"dashboard benchmark on {db_url.rsplit('/', 1)[-1]}: {sessions:,} sessions, n={n} x {ctx.repeats}")
    common.migrate(db_url)
    common.setup_django(db_url)
    from django.contrib.auth.models import Group, User  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415

    from annotations.insights import selectors, services  # noqa: PLC0415
    from feedbackhub import roles  # noqa: PLC0415

    data = ensure_dataset(sessions, ctx.log)
    t0 = time.perf_counter()
    services.rollup_rebuild()
    rebuild_s = time.perf_counter() - t0
    _, last_day = selectors.rollup_day_range()
    assert last_day is not None, "the rollup is empty"
    t0 = time.perf_counter()
    services.rollup_refresh_days(days=[last_day - dt.timedelta(days=10)])
    refresh_ms = (time.perf_counter() - t0) * 1000
    from annotations.insights.models import DailyRollup  # noqa: PLC0415

    rollup_rows = DailyRollup.objects.count()
    ctx.log(f"rollup rebuilt in {rebuild_s:.1f} s ({rollup_rows:,} rows); one day refreshed in {refresh_ms:.0f} ms")

    user, _ = User.objects.get_or_create(username=USERNAME)
    user.groups.add(Group.objects.get_or_create(name=roles.PRODUCT_ANALYST)[0])
    client = Client()
    client.force_login(user)
    base = reverse("insights:dashboard")
    combo_list = combos(last_day)
    problems: list[str] = []
    for combo in combo_list:
        combo.url = base + ("?" + urlencode(combo.params) if combo.params else "")
        with CaptureQueriesContext(connection) as captured:
            response = client.get(combo.url)
        combo.queries = len(captured.captured_queries)
        body = response.content.decode()
        got = {name: int(value) for name, value in TOTAL.findall(body)}
        if response.status_code != 200 or not got:
            problems.append(f"{combo.name}: status {response.status_code}, no totals on the page")
            combo.verified = "FAILED"
            continue
        direct = _direct_totals(combo.params, last_day)
        if got != direct:
            problems.append(f"{combo.name}: dashboard {got} but the session tables give {direct}")
            combo.verified = "MISMATCH"
        else:
            combo.verified = f"{direct['sessions']:,} sessions, {direct['feedback']:,} events"
        for _ in range(WARMUP):
            client.get(combo.url)
    from django.core.cache.backends.dummy import DummyCache  # noqa: PLC0415

    from annotations.insights import views  # noqa: PLC0415

    shared_cache = views.cache
    n_cold = max(3, n // 4)
    for _ in range(ctx.repeats):
        for combo in combo_list:
            for _ in range(n):
                t0 = time.perf_counter()
                response = client.get(combo.url)
                combo.times_ms.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
            # Cold: the body computed and rendered on every request, as on the first view after a rollup refresh.
            views.cache = DummyCache("cold", {})
            try:
                for _ in range(n_cold):
                    t0 = time.perf_counter()
                    response = client.get(combo.url)
                    combo.cold_ms.append((time.perf_counter() - t0) * 1000)
                    assert response.status_code == 200
            finally:
                views.cache = shared_cache
    all_times = [t for c in combo_list for t in c.times_ms]
    overall = common.percentile(all_times, 95)
    cold_p95 = common.percentile([t for c in combo_list for t in c.cold_ms], 95)
    worst = max(combo_list, key=lambda c: common.percentile(c.times_ms, 95))
    worst_p95 = common.percentile(worst.times_ms, 95)
    rows = [
        [c.name, len(c.times_ms), f"{common.percentile(c.times_ms, 50):.1f}",
         f"{common.percentile(c.times_ms, 95):.1f}", f"{max(c.times_ms):.1f}",
         f"{common.percentile(c.cold_ms, 50):.1f}", f"{common.percentile(c.cold_ms, 95):.1f}", c.queries, c.verified]
        for c in combo_list
    ]
    passed = worst_p95 <= TARGET_P95_MS and not problems
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "verdicts": [
            {"name": "Dashboard p95, worst filter combination", "target": f"<= {TARGET_P95_MS:.0f} ms",
             "measured": f"{worst_p95:.1f} ms ({worst.name})", "value": worst_p95, "pass": passed},
            {"name": "Dashboard p95, all combinations together (informative)", "target": "-",
             "measured": f"{overall:.1f} ms", "value": overall, "pass": None},
            {"name": "Dashboard p95 with the body computed on every request (cold, informative)", "target": "-",
             "measured": f"{cold_p95:.1f} ms", "value": cold_p95, "pass": None},
        ],
        "tables": [
            {
                "title": "Data set",
                "columns": ["sessions", "turns", "feedback events", "rollup rows", "rollup rebuild (s)",
                            "one-day refresh (ms)", "data set load (s)"],
                "rows": [[f"{data['sessions']:,}", f"{data['turns']:,}", f"{data['feedback']:,}", f"{rollup_rows:,}",
                          f"{rebuild_s:.1f}", f"{refresh_ms:.0f}",
                          "reused" if data["reused"] else f"{data['load_seconds']:.1f}"]],
            },
            {
                "title": "Dashboard server time (ms, Django test client, logged in as a product analyst)",
                "columns": ["combination", "requests", "p50", "p95", "max", "cold p50", "cold p95", "cold queries",
                            "checked against raw tables"],
                "rows": rows,
            },
        ],
        "notes": [
            f"{WARMUP} untimed warm-ups per combination, then {n} requests per combination per round, "
            f"{ctx.repeats} rounds interleaved; p95 over all timed requests of a combination.",
            "The dashboard reads the daily rollup (day x model version x environment x user role x app version, "
            "stored at eight grains). Its body (figures, charts, tables) is cached for 60 s per filter set and "
            "rollup refresh, as in production: p50/p95 are what a viewer gets; 'cold' requests compute and render "
            f"the body every time ({n_cold} per combination per round), as the first view after a refresh does.",
            "'cold queries' counts every SQL query of one cold request, login session and user included (a cached "
            "one runs 4).",
            *problems,
        ],
        "data": {c.name: c.times_ms for c in combo_list},
    }
