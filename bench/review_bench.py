"""Review workspace: server time of the review page for a conversation of 50 turns with 200 annotations, and of an
annotation save.

One conversation (25 user + 25 assistant turns) gets 200 annotations with tags, thread replies and a few accepted
suggestions, built once through the services and reused. The page is requested through Django's test client as a
domain expert (middleware, login, CSP, template rendering; no network), after a few untimed warm-ups, ``n`` times
per round, and again right after saves. A save is the real edit view: POST with the version being edited, which
checks permissions and the version, writes the annotation and its audit event, and renders the card back.
"""

from __future__ import annotations

import time
from typing import Any

from bench import common, list_bench

NAME = "review"
TITLE = "Review workspace: page and annotation save"
FULL_N = 60
QUICK_N = 5
WARMUP = 3
TARGET_PAGE_P95_MS = 60.0
TARGET_SAVE_P95_MS = 30.0
SOURCE = "bench-review"


def _dataset() -> tuple[Any, Any, Any]:
    import random  # noqa: PLC0415

    from django.contrib.auth.models import Group, User  # noqa: PLC0415

    from annotations import anchoring, services  # noqa: PLC0415
    from annotations.models import Annotation, Tag  # noqa: PLC0415
    from feedbackhub import roles  # noqa: PLC0415
    from sessions.models import Conversation, Turn, TurnRole  # noqa: PLC0415

    expert, _ = User.objects.get_or_create(username="bench-expert")
    expert.groups.add(Group.objects.get_or_create(name=roles.DOMAIN_EXPERT)[0])
    moderator, _ = User.objects.get_or_create(username="bench-moderator")
    moderator.groups.add(Group.objects.get_or_create(name=roles.MODERATOR)[0])
    conversation, created = Conversation.objects.get_or_create(
        source=SOURCE, external_id="50-turns", defaults={"content_hash": "0" * 64, "title": "Review benchmark"}
    )
    if created or not Annotation.objects.filter(conversation=conversation).exists():
        Turn.objects.filter(conversation=conversation).delete()
        turns = []
        for i in range(25):
            turns.append(Turn(conversation=conversation, position=2 * i, role=TurnRole.USER,
                              content=f"Question {i}: how do I configure feature {i}?"))
            turns.append(Turn(conversation=conversation, position=2 * i + 1, role=TurnRole.ASSISTANT,
                              content=f"To configure feature {i}, open Settings, choose the advanced tab and set "
                                      f"the value to {i * 7}. The source is document {i}; see also the FAQ."))
        Turn.objects.bulk_create(turns)
        replies = list(Turn.objects.filter(conversation=conversation, role=TurnRole.ASSISTANT).order_by("position"))
        tags = list(Tag.objects.all())
        rng = random.Random(11)
        for n in range(200):
            turn = replies[n % len(replies)]
            quote = rng.choice(["open Settings", "advanced tab", "the value", "the FAQ", "document"])
            start = turn.content.index(quote)
            selector = {"start": start, "end": start + len(quote), "exact": quote,
                        "text_hash": anchoring.text_hash(turn.content)}
            a = services.annotation_create(actor=moderator if n % 2 else expert, turn=turn, body=f"note {n}",
                                           tag_ids=[tags[n % len(tags)].pk], **selector)
            if n % 5 == 0:
                services.reply_create(actor=expert, annotation_id=a.pk, body=f"reply {n}")
    own = Annotation.objects.filter(conversation=conversation, author=expert).order_by("id").first()
    return conversation, expert, own


def run(ctx: common.Context) -> dict[str, Any]:
    n = QUICK_N if ctx.quick else FULL_N
    db_url = common.database_url(quick=ctx.quick)
    ctx.log(f"review benchmark on {db_url.rsplit('/', 1)[-1]}: n={n} x {ctx.repeats} rounds")
    common.migrate(db_url)
    common.setup_django(db_url)
    common.collect_static()
    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415

    from annotations.models import Annotation  # noqa: PLC0415

    conversation, expert, own = _dataset()
    client = Client()
    client.force_login(expert)
    page_url = reverse("annotations:review", args=[conversation.pk])
    save_url = reverse("annotations:annotation_edit", args=[own.pk])
    annotations = Annotation.objects.filter(conversation=conversation, deleted_at__isnull=True).count()
    for _ in range(WARMUP):
        assert client.get(page_url).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        client.get(page_url)
    # Read now: every request start clears the connection's query log.
    page_queries = len(captured.captured_queries)
    page_ms: list[float] = []
    save_ms: list[float] = []
    after_ms: list[float] = []
    # CPU time of this thread and time in SQL per request, by step: what the code costs, apart from waiting for a
    # CPU on a loaded machine (bench.list_bench measures the list the same way).
    cpu_ms: dict[str, list[float]] = {"page": [], "save": [], "after": [], "warm-up": []}
    sql_ms: dict[str, list[float]] = {"page": [], "save": [], "after": [], "warm-up": []}
    version = Annotation.objects.get(pk=own.pk).version

    def timed(step: str, request: Any) -> tuple[Any, float]:
        timer = list_bench._SqlTimer()
        with connection.execute_wrapper(timer):
            cpu0 = time.thread_time()
            t0 = time.perf_counter()
            response = request()
            elapsed = (time.perf_counter() - t0) * 1000
            cpu_ms[step].append((time.thread_time() - cpu0) * 1000)
        sql_ms[step].append(timer.seconds * 1000)
        return response, elapsed

    def save(label: str, step: str = "save") -> float:
        nonlocal version
        response, elapsed = timed(step, lambda: client.post(save_url, {"version": version, "body": f"edited {label}"}))
        assert response.status_code == 200, response.content[:500]
        version += 1
        return elapsed

    def page(step: str = "page") -> float:
        response, elapsed = timed(step, lambda: client.get(page_url))
        assert response.status_code == 200
        return elapsed

    for round_no in range(ctx.repeats):
        page("warm-up")  # the previous round's last save left one card to render: not part of the read-only series
        page_ms += [page() for _ in range(n)]
        save_ms += [save(f"{round_no}.{i}") for i in range(n)]
        for i in range(n):
            save(f"{round_no}.after.{i}", "warm-up")
            after_ms.append(page("after"))
    page_p95 = common.percentile(page_ms, 95)
    save_p95 = common.percentile(save_ms, 95)
    after_p95 = common.percentile(after_ms, 95)

    def row(step: str, values: list[float], key: str, queries: object = "") -> list[object]:
        return [step, len(values), f"{common.percentile(values, 50):.1f}", f"{common.percentile(values, 95):.1f}",
                f"{max(values):.1f}", f"{common.percentile(sql_ms[key], 50):.1f}",
                f"{common.percentile(cpu_ms[key], 50):.1f}", f"{common.percentile(cpu_ms[key], 95):.1f}", queries]

    rows = [
        row(f"review page (50 turns, {annotations} annotations)", page_ms, "page", page_queries),
        row("review page right after a save (one card re-rendered)", after_ms, "after"),
        row("annotation save (edit view, card rendered back)", save_ms, "save"),
    ]
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "verdicts": [
            {"name": "Review page p95, 50 turns with 200 annotations", "target": f"<= {TARGET_PAGE_P95_MS:.0f} ms",
             "measured": f"{page_p95:.1f} ms", "value": page_p95, "pass": page_p95 <= TARGET_PAGE_P95_MS},
            {"name": "Annotation save p95", "target": f"<= {TARGET_SAVE_P95_MS:.0f} ms",
             "measured": f"{save_p95:.1f} ms", "value": save_p95, "pass": save_p95 <= TARGET_SAVE_P95_MS},
            {"name": "Review page p95 right after a save (informative)", "target": "-",
             "measured": f"{after_p95:.1f} ms", "value": after_p95, "pass": None},
        ],
        "tables": [{
            "title": "Server time (ms, Django test client, logged in as a domain expert)",
            "columns": ["step", "requests", "p50", "p95", "max", "SQL p50", "app CPU p50", "app CPU p95", "queries"],
            "rows": rows,
        }],
        "notes": [
            f"{WARMUP} untimed warm-up page requests; then per round {n} page views, {n} saves, and {n} pairs of "
            f"save + page view; {ctx.repeats} rounds; p50/p95/max over all timed requests.",
            "Rendered cards and turns are cached (Redis) by their state, so a page view after a change renders only "
            "what changed; the 'right after a save' row shows that case.",
            "'queries' counts every SQL query of one page request, login session and user included.",
            "'SQL p50' is the median time a request spent in the database; 'app CPU' the CPU time the request used "
            "in the Django process (view, services, template, middleware, after-commit hooks). Wall time above "
            "their sum is waiting for a CPU (or for the database server) on the shared machine.",
        ],
        "data": {"annotations": annotations, "page_ms": page_ms, "save_ms": save_ms, "after_save_ms": after_ms,
                 "cpu_ms": {k: v for k, v in cpu_ms.items() if k != "warm-up"},
                 "sql_ms": {k: v for k, v in sql_ms.items() if k != "warm-up"}},
    }
