"""Conversation list latency at a million conversations: the real view, through Django's test client, logged in.

The data set (bench.list_data) is built once with set-based SQL and reused. Each filter combination is requested
``n`` times per round after a few untimed warm-up requests, in several rounds interleaved across combinations (so a
burst of load on the shared machine hits all of them alike); p50/p95 are over all timed requests. Before timing,
every combination's first page is checked against the same filter written directly in SQL, so a filter the view
ignored, or a wrong page, cannot pass as a fast one.

The client goes through the whole stack (middleware, login, CSP, template rendering) with DEBUG off and
persistent database connections, as a production server would; only the network is missing.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bench import common, list_data

NAME = "list"
TITLE = "Conversation list at a million conversations"
FULL_COUNT = 1_000_000
QUICK_COUNT = 20_000
FULL_N = 60
QUICK_N = 5
WARMUP = 3
TARGET_P95_MS = 80.0
PAGE_SIZE = 50
USERNAME = "bench-analyst"
ROW_LINK = re.compile(r'href="/conversations/(\d+)/"')
# The "next page" link carries the keyset cursor in ``after`` (sessions.forms.ConversationFilterForm).
NEXT_LINK = re.compile(r'href="(/conversations/\?[^"]*?\bafter=[^"]*)"')


@dataclass
class Combo:
    """One request shape: query parameters for the view and the same filter as SQL for the check."""

    name: str
    params: dict[str, str]
    where: str = "TRUE"
    page: int = 1
    htmx: bool = False
    url: str = ""
    times_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    round_p95: list[float] = field(default_factory=list)
    queries: int | None = None
    verified: str = "not checked"


def combos(count: int) -> list[Combo]:
    """The filter combinations measured, with a date window in the middle of the data set."""
    middle = dt.datetime.fromisoformat(list_data.EPOCH) + dt.timedelta(minutes=count // 2)
    days = max(1, min(30, count // (4 * 1440)))
    start = middle.date()
    end = start + dt.timedelta(days=days)
    # The form's end date is inclusive; the SQL bound is the start of the next day.
    date_params = {"started_from": start.isoformat(), "started_to": (end - dt.timedelta(days=1)).isoformat()}
    date_sql = f"started_at >= '{start.isoformat()}T00:00:00+00' AND started_at < '{end.isoformat()}T00:00:00+00'"
    return [
        Combo("no filter", {}),
        Combo("environment = dev", {"environment": "dev"}, "environment = 'dev'"),
        Combo("model version + environment", {"model_version": "mistral-large-2411", "environment": "test"},
              "model_version = 'mistral-large-2411' AND environment = 'test'"),
        Combo("has negative feedback", {"negative": "1"}, "has_negative_feedback"),
        Combo("feedback type = thumbs down", {"feedback": "thumbs_down"},
              "feedback_kinds @> ARRAY['thumbs_down']::varchar[]"),
        Combo("feedback type = correction (rare)", {"feedback": "correction"},
              "feedback_kinds @> ARRAY['correction']::varchar[]"),
        Combo(f"date range ({days} days)", date_params, date_sql),
        Combo("text search 'refund'", {"q": "refund"},
              "search_vector @@ websearch_to_tsquery('english', 'refund')"),
        Combo("text search 'pension contributions'", {"q": "pension contributions"},
              "search_vector @@ websearch_to_tsquery('english', 'pension contributions')"),
        Combo("negative + prod + date range", {"negative": "1", "environment": "prod", **date_params},
              f"has_negative_feedback AND environment = 'prod' AND {date_sql}"),
        Combo("page 2 via cursor, no filter", {}, page=2),
        Combo("page 2 via cursor, has negative", {"negative": "1"}, "has_negative_feedback", page=2),
        Combo("htmx partial, environment = test", {"environment": "test"}, "environment = 'test'", htmx=True),
    ]


def _ids(body: str) -> list[int]:
    seen: dict[int, None] = {}
    for match in ROW_LINK.finditer(body):
        seen.setdefault(int(match.group(1)), None)
    return list(seen)


def _expected_ids(combo: Combo, table: str) -> list[int]:
    from django.db import connection  # noqa: PLC0415

    offset = (combo.page - 1) * PAGE_SIZE
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT id FROM "{table}" WHERE {combo.where} '
            f"ORDER BY started_at DESC NULLS FIRST, id DESC LIMIT {PAGE_SIZE} OFFSET {offset}"
        )
        return [row[0] for row in cursor.fetchall()]


def _get(client: Any, combo: Combo) -> Any:
    headers = {"HX-Request": "true"} if combo.htmx else {}
    return client.get(combo.url, headers=headers)


def resolve_urls(client: Any, combo_list: list[Combo]) -> list[str]:
    """Give each combination its URL; a second page is reached by following the first page's "next" link.

    Returns problems; a combination whose URL cannot be found is dropped from ``combo_list``.
    """
    from urllib.parse import urlencode  # noqa: PLC0415

    from django.urls import reverse  # noqa: PLC0415

    base = reverse("conversations:list")
    problems = []
    for combo in list(combo_list):
        combo.url = base + ("?" + urlencode(combo.params) if combo.params else "")
        if combo.page == 2:
            first = client.get(combo.url)
            match = NEXT_LINK.search(first.content.decode())
            if match is None:
                problems.append(f"{combo.name}: no link to the next page on {combo.url}; not measured")
                combo_list.remove(combo)
                continue
            combo.url = html.unescape(match.group(1))
    return problems


def verify(client: Any, combo_list: list[Combo]) -> list[str]:
    """Check each combination's page against SQL; count its queries. Returns the problems found."""
    from django.db import connection  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415

    from sessions.models import Conversation  # noqa: PLC0415

    table = Conversation._meta.db_table
    problems = []
    for combo in combo_list:
        with CaptureQueriesContext(connection) as ctx:
            response = _get(client, combo)
        combo.queries = len(ctx.captured_queries)
        if response.status_code != 200:
            combo.verified = f"HTTP {response.status_code}"
            problems.append(f"{combo.name}: {combo.url} answered {response.status_code}")
            continue
        got = _ids(response.content.decode())
        expected = _expected_ids(combo, table)
        if got == expected and expected:
            combo.verified = f"yes ({len(got)} rows)"
        elif got == expected:
            combo.verified = "empty page"
            problems.append(f"{combo.name}: the page is empty; the data set does not exercise this filter")
        else:
            combo.verified = "MISMATCH"
            problems.append(
                f"{combo.name}: {combo.url} shows {len(got)} rows {got[:3]}..., SQL expects {len(expected)} rows "
                f"{expected[:3]}... (is the filter parameter named differently?)"
            )
    return problems


class _SqlTimer:
    """A database execute wrapper summing the time spent in SQL (sent, run and fetched) during one request."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started


def measure(client: Any, combo_list: list[Combo], *, n: int, rounds: int, log: Any = None) -> None:
    """Time ``n`` requests per combination per round, after ``WARMUP`` untimed ones per round.

    Besides wall time, each request records its time in SQL and the CPU time this thread used (Python: view,
    template, middleware). CPU time barely moves with load from other processes, so it tells a slow machine
    from slow code.
    """
    from django.db import connection  # noqa: PLC0415

    for round_no in range(1, rounds + 1):
        for combo in combo_list:
            for _ in range(WARMUP):
                _get(client, combo)
            times = []
            for _ in range(n):
                timer = _SqlTimer()
                with connection.execute_wrapper(timer):
                    cpu_started = time.thread_time()
                    started = time.perf_counter()
                    response = _get(client, combo)
                    elapsed = (time.perf_counter() - started) * 1000
                    cpu = (time.thread_time() - cpu_started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{combo.name}: {combo.url} answered {response.status_code}")
                times.append(elapsed)
                combo.sql_ms.append(timer.seconds * 1000)
                combo.cpu_ms.append(cpu)
            combo.times_ms += times
            combo.round_p95.append(round(common.percentile(times, 95), 1))
        if log:
            log(f"  round {round_no}/{rounds} done")


def bench_client() -> Any:
    """A test client logged in as a product analyst (the least privileged role that browses)."""
    from django.contrib.auth.models import Group, User  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415

    from feedbackhub import roles  # noqa: PLC0415

    user, _ = User.objects.get_or_create(username=USERNAME)
    user.groups.add(Group.objects.get_or_create(name=roles.PRODUCT_ANALYST)[0])
    client = Client()
    client.force_login(user)
    return client


def run(ctx: common.Context) -> dict[str, Any]:
    count = QUICK_COUNT if ctx.quick else FULL_COUNT
    n = QUICK_N if ctx.quick else FULL_N
    db_url = common.database_url(quick=ctx.quick)
    ctx.log(f"list benchmark on {db_url.rsplit('/', 1)[-1]}: {count:,} conversations, n={n} x {ctx.repeats} rounds")
    common.migrate(db_url)
    common.setup_django(db_url)
    dataset = list_data.ensure_dataset(count, log=ctx.log)
    client = bench_client()
    combo_list = combos(count)
    problems = resolve_urls(client, combo_list)
    problems += verify(client, combo_list)
    for problem in problems:
        ctx.log(f"  check: {problem}")
    ctx.log("timing requests")
    measure(client, combo_list, n=n, rounds=ctx.repeats, log=ctx.log)
    return summarise(ctx, count, n, dataset, combo_list, problems)


def summarise(
    ctx: common.Context, count: int, n: int, dataset: dict[str, Any], combo_list: list[Combo], problems: list[str]
) -> dict[str, Any]:
    rows = []
    data = []
    for combo in combo_list:
        p50 = common.percentile(combo.times_ms, 50)
        p95 = common.percentile(combo.times_ms, 95)
        sql50 = common.percentile(combo.sql_ms, 50)
        cpu50 = common.percentile(combo.cpu_ms, 50)
        rows.append([
            combo.name, f"{len(combo.times_ms)}", f"{p50:.1f}", f"{p95:.1f}", f"{max(combo.times_ms):.1f}",
            " / ".join(f"{v:.1f}" for v in combo.round_p95), f"{sql50:.1f}", f"{cpu50:.1f}", str(combo.queries),
            combo.verified, "pass" if p95 <= TARGET_P95_MS else "FAIL",
        ])
        data.append({"name": combo.name, "url": combo.url, "htmx": combo.htmx, "requests": len(combo.times_ms),
                     "p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "max_ms": round(max(combo.times_ms), 2),
                     "round_p95_ms": combo.round_p95, "sql_p50_ms": round(sql50, 2),
                     "sql_p95_ms": round(common.percentile(combo.sql_ms, 95), 2), "cpu_p50_ms": round(cpu50, 2),
                     "queries": combo.queries, "verified": combo.verified})
    worst = max(data, key=lambda d: d["p95_ms"])
    verdicts = [{
        "name": f"Conversation list p95, worst of {len(data)} filter combinations, {count:,} conversations",
        "target": f"<= {TARGET_P95_MS:.0f} ms",
        "measured": f"{worst['p95_ms']:.1f} ms ({worst['name']})",
        "value": worst["p95_ms"],
        "pass": worst["p95_ms"] <= TARGET_P95_MS,
    }, {
        "name": "Every combination's first page equals the same filter in SQL",
        "target": "all match",
        "measured": "all match" if not problems else f"{len(problems)} problems",
        "pass": not problems,
    }]
    notes = [
        f"Data set: {dataset['conversations']:,} conversations, {dataset['turns']:,} turns, "
        f"{dataset['feedback']:,} feedback events"
        + (f" (built in {dataset['load_seconds']:.0f} s, reused by later runs)." if dataset.get("load_seconds")
           else "."),
        f"Each combination: {WARMUP} untimed warm-up requests then {n} timed ones per round, {ctx.repeats} rounds "
        "interleaved across combinations; p50/p95/max over all timed requests; 'round p95' shows the spread.",
        "'SQL p50' is the median time a request spent in the database (all its queries, sent to fetched); "
        "'app CPU p50' the median CPU time the request used in the Django process (view, template, middleware). "
        "Wall time above their sum is waiting for a CPU on the shared machine.",
        "'queries' is the number of SQL queries one request ran (login session and user included).",
    ]
    notes += [f"Problem: {p}" for p in problems]
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "verdicts": verdicts,
        "tables": [{
            "title": "Latency per filter combination (ms, Django test client, logged in)",
            "columns": ["combination", "requests", "p50", "p95", "max", "round p95", "SQL p50", "app CPU p50",
                        "queries", "page checked", f"p95 <= {TARGET_P95_MS:.0f}"],
            "rows": rows,
        }],
        "notes": notes,
        "data": {"conversations": count, "dataset": dataset, "combinations": data},
    }
