"""Review queues: server time of opening the next item, and the time to compute a queue's agreement figures.

A queue of 10,000 replies (one per conversation, built from a list filter by the queue's own SQL) with 3 blind
reviews per reply is seeded once: every reviewer completed every item with a two-field rubric (numeric 1-5 and a
categorical field) and highlighted a span with a tag on a third of the replies (30,000 reviews, 60,000 scores,
10,000 tagged spans). The agreement report (Krippendorff's alpha per field and tag, Cohen's kappa and span F1 per
pair, everything the queue page and agreement.json show) is computed from the database ``repeats`` times.

Next item: a second queue over the same replies asks for one review each; half of its items are already done by
others. A reviewer asks for the next item through the real view (Django's test client: middleware, login, the hold
with SKIP LOCKED, the review workspace with the rubric rendered), then completes it through the service (untimed),
``n`` times per round. Between requests the benchmark runs what the worker runs meanwhile: rendering the reviewer's
next items ahead (untimed). A last series opens items with nothing rendered ahead (informative).
"""

from __future__ import annotations

import time
from typing import Any

from bench import common, list_bench

NAME = "queues"
TITLE = "Review queues: next item and agreement"
ITEMS = 10_000
QUICK_ITEMS = 300
REVIEWERS = 3
FULL_N = 60
QUICK_N = 5
WARMUP = 3
TARGET_NEXT_P95_MS = 60.0
TARGET_AGREEMENT_S = 2.0
SOURCE = "bench-queues"


def _seed(items: int) -> tuple[Any, Any, Any]:
    import random  # noqa: PLC0415

    from django.contrib.auth.models import Group, User  # noqa: PLC0415
    from django.utils import timezone  # noqa: PLC0415

    from annotations import anchoring  # noqa: PLC0415
    from annotations import services as review  # noqa: PLC0415
    from annotations.models import Annotation, Score, Tag  # noqa: PLC0415
    from annotations.queues import services  # noqa: PLC0415
    from annotations.queues.models import QueueItem, Review, ReviewQueue, ReviewState  # noqa: PLC0415
    from feedbackhub import roles  # noqa: PLC0415
    from sessions.models import Conversation, Turn, TurnRole  # noqa: PLC0415

    expert_group = Group.objects.get_or_create(name=roles.DOMAIN_EXPERT)[0]
    people = []
    for name in ["bench-mod", *(f"bench-rev{i}" for i in range(REVIEWERS)), "bench-next"]:
        user, _ = User.objects.get_or_create(username=name)
        user.groups.add(Group.objects.get_or_create(name=roles.MODERATOR)[0] if name == "bench-mod" else expert_group)
        people.append(user)
    moderator, reviewers, next_reviewer = people[0], people[1:-1], people[-1]
    helpful = review.score_config_save(actor=moderator, key="bench-helpfulness", name="Helpfulness (bench)",
                                       kind="numeric", minimum=1, maximum=5, step=1)
    tone = review.score_config_save(actor=moderator, key="bench-tone", name="Tone (bench)", kind="categorical",
                                    options=["good", "neutral", "rude"])
    name = f"bench agreement {items}"
    queue = ReviewQueue.objects.filter(name=name).first()
    if queue is None:
        if Conversation.objects.filter(source=SOURCE).count() != items:
            Conversation.objects.filter(source=SOURCE).delete()
            now = timezone.now()
            conversations = Conversation.objects.bulk_create([
                Conversation(source=SOURCE, external_id=f"q-{i}", content_hash="0" * 64, title=f"Queue bench {i}",
                             started_at=now, turn_count=2) for i in range(items)
            ], batch_size=2000)
            Turn.objects.bulk_create([
                t for c in conversations for t in (
                    Turn(conversation=c, position=0, role=TurnRole.USER, content=f"How do I reset device {c.pk}?"),
                    Turn(conversation=c, position=1, role=TurnRole.ASSISTANT,
                         content=f"Open Settings, choose Reset and confirm. Device {c.pk} restarts in a minute."),
                )
            ], batch_size=4000)
        queue = services.queue_create(actor=moderator, spec=services.QueueSpec(
            name=name, query_string=f"source={SOURCE}", reviews_per_item=REVIEWERS, rubric=[helpful, tone],
            reviewers=reviewers))
        rng = random.Random(5)
        tag = Tag.objects.order_by("pk").first()
        rows = list(QueueItem.objects.filter(queue=queue).select_related("turn"))
        done_at = timezone.now()
        Review.objects.bulk_create([
            Review(item=item, queue=queue, reviewer=r, state=ReviewState.DONE, leased_until=done_at,
                   completed_at=done_at)
            for item in rows for r in reviewers
        ], batch_size=5000)
        QueueItem.objects.filter(queue=queue).update(done_count=REVIEWERS)
        scores, annotations = [], []
        for item in rows:
            truth = rng.randint(1, 5)
            for r in reviewers:
                value = min(5, max(1, truth + rng.choice([-1, 0, 0, 0, 1])))
                scores.append(Score(conversation_id=item.conversation_id, turn_id=item.turn_id, config=helpful,
                                    author=r, value=value))
                scores.append(Score(conversation_id=item.conversation_id, turn_id=item.turn_id, config=tone,
                                    author=r, option=rng.choice(tone.options)))
                if item.position % 3 == 0 and rng.random() < 0.33 * REVIEWERS:
                    start = rng.choice([0, 5, 14])
                    end = start + rng.choice([8, 12])
                    content = item.turn.content
                    annotations.append(Annotation(
                        conversation_id=item.conversation_id, turn_id=item.turn_id, author=r, exact=content[start:end],
                        start=start, end=end, text_hash=anchoring.text_hash(content)))
        Score.objects.bulk_create(scores, batch_size=10_000)
        made = Annotation.objects.bulk_create(annotations, batch_size=5000)
        Annotation.tags.through.objects.bulk_create(
            [Annotation.tags.through(annotation_id=a.pk, tag_id=tag.pk) for a in made], batch_size=10_000)
    # The next-item queue is built again on every run: each run uses up some of its items.
    next_name = f"bench next {items}"
    ReviewQueue.objects.filter(name=next_name).delete()
    next_queue = services.queue_create(actor=moderator, spec=services.QueueSpec(
        name=next_name, query_string=f"source={SOURCE}", reviews_per_item=1, rubric=[helpful, tone],
        reviewers=[*reviewers, next_reviewer]))
    half = list(QueueItem.objects.filter(queue=next_queue, position__lte=items // 2))
    now = timezone.now()
    Review.objects.bulk_create([Review(item=i, queue=next_queue, reviewer=reviewers[0], state=ReviewState.DONE,
                                       leased_until=now, completed_at=now) for i in half], batch_size=5000)
    QueueItem.objects.filter(pk__in=[i.pk for i in half]).update(done_count=1)
    return queue, next_queue, next_reviewer


def run(ctx: common.Context) -> dict[str, Any]:
    items = QUICK_ITEMS if ctx.quick else ITEMS
    n = QUICK_N if ctx.quick else FULL_N
    db_url = common.database_url(quick=ctx.quick)
    ctx.log(f"queues benchmark on {db_url.rsplit('/', 1)[-1]}: {items} items x {REVIEWERS} reviewers, next n={n}")
    common.migrate(db_url)
    common.setup_django(db_url)
    common.collect_static()
    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415

    from annotations.queues import prefetch, selectors, services  # noqa: PLC0415
    from annotations.queues.models import Review, ReviewState  # noqa: PLC0415

    t0 = time.perf_counter()
    queue, next_queue, reviewer = _seed(items)
    ctx.log(f"seeded in {time.perf_counter() - t0:.1f} s")

    agreement_s: list[float] = []
    load_s: list[float] = []
    report: dict = {}
    for _ in range(max(2, ctx.repeats)):
        t0 = time.perf_counter()
        data = selectors.agreement_data(queue)
        t1 = time.perf_counter()
        report = selectors.agreement_report(queue, data)
        t2 = time.perf_counter()
        load_s.append(t1 - t0)
        agreement_s.append(t2 - t0)
    agreement_best = min(agreement_s)
    agreement_worst = max(agreement_s)

    # Nothing rendered by an earlier run: the benchmark's own Redis database holds only its cache and sessions.
    from django.core.cache import cache  # noqa: PLC0415

    cache.clear()
    client = Client()
    client.force_login(reviewer)
    url = reverse("queues:next", args=[next_queue.pk])
    rubric = list(next_queue.rubric.all())
    answers = {c: ("3" if c.kind == "numeric" else c.options[0]) for c in rubric}
    del data  # a web process holds no agreement data while it serves items
    next_ms: list[float] = []
    cold_ms: list[float] = []
    sql_ms: list[float] = []

    def take_and_complete(timed: bool, *, warmed: bool = True) -> None:
        timer = list_bench._SqlTimer()
        with connection.execute_wrapper(timer):
            t0 = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200 and b"rubric-form" in response.content, response.content[:300]
        if timed and warmed:
            next_ms.append(elapsed)
            sql_ms.append(timer.seconds * 1000)
        elif timed:
            cold_ms.append(elapsed)
        if warmed:
            # What the worker does while the reviewer reads this item (queues.warm_upcoming): untimed here.
            prefetch.warm_upcoming(next_queue.pk, reviewer.pk)
        held = Review.objects.get(queue=next_queue, reviewer=reviewer, state=ReviewState.IN_PROGRESS)
        services.review_complete(queue=next_queue, item_id=held.item_id, reviewer=reviewer, answers=answers)

    for _ in range(WARMUP):
        take_and_complete(False)
    for _ in range(ctx.repeats):
        for _ in range(n):
            take_and_complete(True)
    # Informative: opening items nobody has opened and the worker has not rendered ahead (all rendering in the
    # request). The first item after the warmed series was warmed: skip it.
    take_and_complete(False, warmed=False)
    for _ in range(n):
        take_and_complete(True, warmed=False)
    next_p95 = common.percentile(next_ms, 95)
    pairs = len(report.get("pairs", []))
    fields = ", ".join(f"{f['key']} alpha {f['alpha']}" for f in report.get("fields", []))
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "verdicts": [
            {"name": f"Next item p95 (queue of {items:,} replies, half done)",
             "target": f"<= {TARGET_NEXT_P95_MS:.0f} ms", "measured": f"{next_p95:.1f} ms", "value": next_p95,
             "pass": next_p95 <= TARGET_NEXT_P95_MS},
            {"name": "Next item p95, nothing rendered ahead (informative)", "target": "-",
             "measured": f"{common.percentile(cold_ms, 95):.1f} ms", "value": common.percentile(cold_ms, 95),
             "pass": None},
            {"name": f"Agreement of {items:,} items x {REVIEWERS} reviewers (slowest run)",
             "target": f"<= {TARGET_AGREEMENT_S:.0f} s", "measured": f"{agreement_worst:.2f} s",
             "value": agreement_worst, "pass": agreement_worst <= TARGET_AGREEMENT_S},
        ],
        "tables": [{
            "title": "Measurements",
            "columns": ["step", "runs", "p50", "p95 / slowest", "SQL p50"],
            "rows": [
                ["next item (GET /queues/<id>/next, ms)", len(next_ms), f"{common.percentile(next_ms, 50):.1f}",
                 f"{next_p95:.1f}", f"{common.percentile(sql_ms, 50):.1f}"],
                ["next item, nothing rendered ahead (ms)", len(cold_ms), f"{common.percentile(cold_ms, 50):.1f}",
                 f"{common.percentile(cold_ms, 95):.1f}", ""],
                ["agreement report, reading included (s)", len(agreement_s),
                 f"{common.percentile(agreement_s, 50):.2f}", f"{agreement_worst:.2f}",
                 f"{common.percentile(load_s, 50):.2f} (reading)"],
            ],
        }],
        "notes": [
            f"Agreement: {items:,} replies, {REVIEWERS} reviewers, {pairs} pairs; {fields}; best run "
            f"{agreement_best:.2f} s.",
            "Next item: one request takes the hold (SELECT ... FOR UPDATE SKIP LOCKED over the queue's items in "
            "order, skipping the done half) and renders the review workspace of the item's conversation with the "
            "rubric; completing it is a separate POST (not timed here).",
            "While a reviewer works on an item, a worker renders their next two items ahead "
            "(queues.warm_upcoming, annotations/queues/prefetch.py); the benchmark runs that task itself between "
            "requests, untimed, as the worker would. The informative row opens items with nothing rendered ahead "
            "(the reply's Markdown, its context and cards all rendered in the request).",
        ],
        "data": {"next_ms": next_ms, "cold_ms": cold_ms, "agreement_s": agreement_s, "load_s": load_s},
    }
