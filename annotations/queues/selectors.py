"""Reads of review queues: progress, "my queues", agreement between reviewers, items to adjudicate, and the blind
rule the review workspace asks (``annotations.visibility``)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.cache import cache
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from annotations import permissions as review_perms
from annotations.models import Annotation, Score, ScoreConfig, Tag
from annotations.queues import agreement as stats
from annotations.queues import sql
from annotations.queues.models import QueueItem, Review, ReviewQueue, ReviewState
from feedbackhub import roles

# --- blind review --------------------------------------------------------------------------------------------------


def blind_turns(viewer, conversation_ids: Collection[int]) -> set[int]:  # noqa: ANN001
    """Replies of the conversations that sit in a queue asking for several independent reviews, where ``viewer``
    is one of that queue's reviewers, the item still needs reviews, and ``viewer`` has not completed it: there
    they see only their own work (the rule registered with ``annotations.visibility``). One query
    (``sql.blind_turns``); none for people who cannot annotate."""
    if not review_perms.can_annotate(viewer):
        return set()  # only annotators review
    return sql.blind_turns(list(conversation_ids), viewer.pk, sorted(roles.user_roles(viewer)))


def with_reviewer(user) -> QuerySet[ReviewQueue]:  # noqa: ANN001
    """Queues, each annotated with whether ``user`` is one of its named reviewers (read with the queue)."""
    named = ReviewQueue.reviewers.through.objects.filter(reviewqueue_id=OuterRef("pk"), user_id=user.pk)
    return ReviewQueue.objects.annotate(named_reviewer=Exists(named))


# --- progress ------------------------------------------------------------------------------------------------------


@dataclass
class ReviewerProgress:
    user_id: int
    username: str
    done: int = 0
    in_progress: int = 0
    skipped: int = 0


@dataclass
class QueueProgress:
    items: int
    complete: int
    adjudicated: int
    reviews_needed: int
    reviews_done: int
    reviewers: list[ReviewerProgress] = field(default_factory=list)

    @property
    def percent(self) -> int:
        return round(100 * self.reviews_done / self.reviews_needed) if self.reviews_needed else 100


def queue_progress(queue: ReviewQueue) -> QueueProgress:
    """Items, complete and adjudicated ones, and per reviewer: done, in progress (held now), skipped. Two queries."""
    totals = QueueItem.objects.filter(queue=queue).aggregate(
        items=Count("pk"),
        complete=Count("pk", filter=Q(done_count__gte=queue.reviews_per_item)),
        adjudicated=Count("pk", filter=Q(adjudicated_at__isnull=False)),
    )
    now = timezone.now()
    rows = (
        Review.objects.filter(queue=queue).values("reviewer_id", "reviewer__username")
        .annotate(
            done=Count("pk", filter=Q(state=ReviewState.DONE)),
            held=Count("pk", filter=Q(state=ReviewState.IN_PROGRESS, leased_until__gt=now)),
            skipped=Count("pk", filter=Q(state=ReviewState.SKIPPED)),
        )
        .order_by("reviewer__username")
    )
    people = [ReviewerProgress(r["reviewer_id"], r["reviewer__username"], r["done"], r["held"], r["skipped"])
              for r in rows]
    done = sum(p.done for p in people)
    return QueueProgress(
        items=totals["items"], complete=totals["complete"], adjudicated=totals["adjudicated"],
        reviews_needed=totals["items"] * queue.reviews_per_item, reviews_done=done, reviewers=people,
    )


@dataclass
class MyQueue:
    queue: ReviewQueue
    done: int
    left: int


def my_queues(user) -> list[MyQueue]:  # noqa: ANN001
    """The open queues ``user`` reviews, with what they did and what is left for them (items they have not
    reviewed or skipped that still need a review), due first. One statement per queue (``my_progress``)."""
    role_names = list(roles.user_roles(user))
    queues = (
        ReviewQueue.objects.filter(is_archived=False)
        .filter(Q(reviewers=user) | Q(reviewer_role__in=role_names))
        .distinct().order_by(F("due_date").asc(nulls_last=True), "-created_at")
    )
    return [my_progress(q, user) for q in queues]


def my_progress(queue: ReviewQueue, user) -> MyQueue:  # noqa: ANN001
    """What ``user`` did in one queue and what is left for them: the items still needing reviews, minus those
    they completed or skipped. One statement (``sql.reviewer_progress``), served by indexes."""
    open_items, done, closed = sql.reviewer_progress(queue.pk, user.pk, queue.reviews_per_item)
    return MyQueue(queue, done, max(0, open_items - closed))


#: A queue's rubric is fixed when it is built, so every item of it can take the copy in the cache.
RUBRIC_CACHE_SECONDS = 600


def queue_rubric(queue: ReviewQueue) -> list[ScoreConfig]:
    """The queue's rubric fields by name, through the cache (one round trip to Redis instead of a query)."""
    return cache.get_or_set(
        f"queues:rubric:{queue.pk}", lambda: sorted(queue.rubric.all(), key=lambda c: (c.name.lower(), c.version)),
        RUBRIC_CACHE_SECONDS,
    )


# --- agreement -----------------------------------------------------------------------------------------------------


@dataclass
class AgreementData:
    """What the agreement figures are computed from: completed reviews, their scores, their annotations."""

    items: list[int]  # item ids with at least one completed review
    turn_of: dict[int, int]  # item -> turn
    reviewers: list[int]
    names: dict[int, str]
    done: dict[int, set[int]]  # item -> reviewers who completed it
    rubric: list[ScoreConfig]
    #: (item, reviewer) -> {config id: value}; categorical values are option indexes.
    scores: dict[tuple[int, int], dict[int, float]]
    #: (item, reviewer) -> set of tag ids they used on the reply (anywhere: spans or the whole reply).
    tags: dict[tuple[int, int], set[int]]
    #: (item, reviewer) -> spans (item, tag, start, end); an untagged span counts under tag 0.
    spans: dict[tuple[int, int], set[tuple[int, int, int, int]]]
    tag_names: dict[int, str]


def agreement_data(queue: ReviewQueue) -> AgreementData:
    """Four queries whatever the queue's size: completed reviews, rubric, scores, annotations with their tags."""
    done_rows = list(
        Review.objects.filter(queue=queue, state=ReviewState.DONE)
        .values_list("item_id", "item__turn_id", "reviewer_id")
    )
    rubric = queue_rubric(queue)
    done: dict[int, set[int]] = defaultdict(set)
    turn_of: dict[int, int] = {}
    item_of_turn: dict[int, int] = {}
    for item_id, turn_id, reviewer_id in done_rows:
        done[item_id].add(reviewer_id)
        turn_of[item_id] = turn_id
        item_of_turn[turn_id] = item_id
    reviewers = sorted({r for _, _, r in done_rows})
    names = dict(get_user_model().objects.filter(pk__in=reviewers).values_list("pk", "username"))
    queue_turns = QueueItem.objects.filter(queue=queue).values("turn_id")
    option_index = {c.pk: {o: float(i) for i, o in enumerate(c.options)} for c in rubric}
    scores: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)
    score_rows = Score.objects.filter(
        turn_id__in=queue_turns, config__in=rubric, is_gold=False
    ).values_list("turn_id", "config_id", "author_id", "value", "option")
    for turn_id, config_id, author_id, value, option in score_rows:
        item_id = item_of_turn.get(turn_id)
        if item_id is None or author_id not in done[item_id]:
            continue
        number = option_index[config_id].get(option) if option else value
        if number is not None:
            scores[(item_id, author_id)][config_id] = number
    tags: dict[tuple[int, int], set[int]] = defaultdict(set)
    spans: dict[tuple[int, int], set[tuple[int, int, int, int]]] = defaultdict(set)
    annotation_rows = (
        Annotation.objects.filter(turn_id__in=queue_turns, deleted_at__isnull=True, is_gold=False)
        .annotate(tag_ids=ArrayAgg("tags__id", filter=Q(tags__isnull=False), default=[]))
        .values_list("turn_id", "author_id", "start", "end", "tag_ids")
    )
    used_tags: set[int] = set()
    for turn_id, author_id, start, end, tag_ids in annotation_rows:
        item_id = item_of_turn.get(turn_id)
        if item_id is None or author_id not in done[item_id]:
            continue
        key = (item_id, author_id)
        tags[key].update(tag_ids)
        used_tags.update(tag_ids)
        if start is not None:
            for tag in tag_ids or [0]:
                spans[key].add((item_id, tag, start, end))
    tag_names = dict(Tag.objects.filter(pk__in=used_tags).values_list("pk", "name"))
    return AgreementData(
        items=sorted(done), turn_of=turn_of, reviewers=reviewers, names=names, done=dict(done), rubric=rubric,
        scores=dict(scores), tags=dict(tags), spans=dict(spans), tag_names=tag_names,
    )


def _level(config: ScoreConfig) -> str:
    return stats.NOMINAL if config.is_nominal else stats.INTERVAL


def _matrix(data: AgreementData, value_of) -> np.ndarray:  # noqa: ANN001
    """Reviewers x items: ``value_of(item, reviewer)`` where the reviewer completed the item, nan elsewhere."""
    row = {r: i for i, r in enumerate(data.reviewers)}
    matrix = np.full((len(data.reviewers), len(data.items)), np.nan)
    for col, item_id in enumerate(data.items):
        for reviewer in data.done[item_id]:
            value = value_of(item_id, reviewer)
            if value is not None:
                matrix[row[reviewer], col] = value
    return matrix


def _pairable(matrix: np.ndarray) -> int:
    """Items with at least two values: the ones alpha is computed over."""
    return int(((~np.isnan(matrix)).sum(axis=0) >= 2).sum())


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def agreement_report(queue: ReviewQueue, data: AgreementData | None = None) -> dict:
    """Every agreement figure of a queue (the queue page and ``agreement.json``), each with the number of items
    behind it: alpha per rubric field and per tag; per reviewer pair Cohen's kappa per categorical/yes-no field
    and per tag, and span exact/overlap F1; the spans pooled over all pairs."""
    data = data or agreement_data(queue)
    fields = []
    matrices = {}
    for config in data.rubric:
        matrix = _matrix(data, lambda i, r, c=config.pk: data.scores.get((i, r), {}).get(c))
        matrices[config.pk] = matrix
        fields.append({
            "key": config.key, "name": config.name, "version": config.version, "kind": config.kind,
            "level": _level(config), "alpha": _rounded(stats.krippendorff_alpha(matrix, _level(config))),
            "items": _pairable(matrix),
        })
    tag_rows = []
    tag_matrices = {}
    for tag_id, name in sorted(data.tag_names.items(), key=lambda kv: kv[1].lower()):
        matrix = _matrix(data, lambda i, r, t=tag_id: 1.0 if t in data.tags.get((i, r), ()) else 0.0)
        tag_matrices[tag_id] = matrix
        tag_rows.append({"tag": name, "tag_id": tag_id,
                         "alpha": _rounded(stats.krippendorff_alpha(matrix, stats.NOMINAL)),
                         "items": _pairable(matrix)})
    pairs = []
    pooled = {"exact": 0, "spans": 0, "shared": 0, "covered": 0}
    index = {r: i for i, r in enumerate(data.reviewers)}
    for a, b in itertools.combinations(data.reviewers, 2):
        common = [col for col, item in enumerate(data.items) if {a, b} <= data.done[item]]
        if not common:
            continue
        kappas = {}
        for config in data.rubric:
            if not config.is_nominal:
                continue
            m = matrices[config.pk]
            both = [c for c in common if not np.isnan(m[index[a], c]) and not np.isnan(m[index[b], c])]
            kappas[config.key] = {"kappa": _rounded(stats.cohen_kappa(
                [m[index[a], c] for c in both], [m[index[b], c] for c in both])), "items": len(both)}
        tag_kappas = {}
        for tag_id, m in tag_matrices.items():
            tag_kappas[data.tag_names[tag_id]] = {"kappa": _rounded(stats.cohen_kappa(
                [m[index[a], c] for c in common], [m[index[b], c] for c in common])), "items": len(common)}
        spans_a = set().union(*(data.spans.get((data.items[c], a), set()) for c in common))
        spans_b = set().union(*(data.spans.get((data.items[c], b), set()) for c in common))
        span = stats.span_agreement(spans_a, spans_b)
        pooled["exact"] += span.exact_matches
        pooled["spans"] += span.spans_a + span.spans_b
        pooled["shared"] += span.shared_code_points
        pooled["covered"] += span.covered_a + span.covered_b
        pairs.append({
            "reviewers": [data.names.get(a, str(a)), data.names.get(b, str(b))], "reviewer_ids": [a, b],
            "items": len(common), "kappa": kappas, "tag_kappa": tag_kappas,
            "spans": {"exact_f1": _rounded(span.exact_f1), "overlap_f1": _rounded(span.overlap_f1),
                      "spans": [span.spans_a, span.spans_b]},
        })
    return {
        "queue": queue.pk,
        "reviews_per_item": queue.reviews_per_item,
        "items_reviewed": len(data.items),
        "items_complete": sum(1 for i in data.items if len(data.done[i]) >= queue.reviews_per_item),
        "fields": fields,
        "tags": tag_rows,
        "pairs": pairs,
        "spans": {
            "exact_f1": _rounded(2 * pooled["exact"] / pooled["spans"]) if pooled["spans"] else None,
            "overlap_f1": _rounded(2 * pooled["shared"] / pooled["covered"]) if pooled["covered"] else None,
            "spans": pooled["spans"],
        },
    }


# --- adjudication --------------------------------------------------------------------------------------------------


def item_agreement(data: AgreementData, item_id: int) -> float:
    """The share of checks the item's reviewers agree on: each rubric field with two or more values (agree: all
    equal), each tag any of them used (agree: all or none used it), and their highlights (mean pairwise overlap
    F1). 1.0 with nothing to compare."""
    reviewers = sorted(data.done.get(item_id, ()))
    checks: list[float] = []
    for config in data.rubric:
        values = [data.scores.get((item_id, r), {}).get(config.pk) for r in reviewers]
        values = [v for v in values if v is not None]
        if len(values) >= 2:
            checks.append(1.0 if len(set(values)) == 1 else 0.0)
    used = [data.tags.get((item_id, r), set()) for r in reviewers]
    for tag in set().union(*used) if used else ():
        checks.append(1.0 if all(tag in u for u in used) or not any(tag in u for u in used) else 0.0)
    f1s = []
    for a, b in itertools.combinations(reviewers, 2):
        f1 = stats.span_agreement(data.spans.get((item_id, a), set()), data.spans.get((item_id, b), set())).overlap_f1
        if f1 is not None:
            f1s.append(f1)
    if f1s:
        checks.append(sum(f1s) / len(f1s))
    return sum(checks) / len(checks) if checks else 1.0


@dataclass
class AdjudicationRow:
    item: QueueItem
    agreement: float


def items_to_adjudicate(queue: ReviewQueue, data: AgreementData | None = None) -> list[AdjudicationRow]:
    """Complete items not adjudicated yet whose reviewers agree on less than the queue's threshold (1.0: any
    disagreement), least agreement first."""
    data = data or agreement_data(queue)
    complete = QueueItem.objects.filter(
        queue=queue, done_count__gte=queue.reviews_per_item, adjudicated_at__isnull=True,
    ).select_related("conversation", "turn").order_by("position")
    rows = []
    for item in complete:
        share = item_agreement(data, item.pk)
        if share < queue.adjudication_threshold or (queue.adjudication_threshold >= 1.0 and share < 1.0):
            rows.append(AdjudicationRow(item, round(share, 4)))
    rows.sort(key=lambda r: (r.agreement, r.item.position))
    return rows


@dataclass
class ReviewerWork:
    user_id: int
    username: str
    annotations: list[Annotation]
    scores: dict[int, Score]


def reviewers_work(queue: ReviewQueue, item: QueueItem) -> list[ReviewerWork]:
    """Each completing reviewer's annotations (with tags) and scores on the item's reply, side by side."""
    done = list(Review.objects.filter(item=item, state=ReviewState.DONE).select_related("reviewer")
                .order_by("reviewer__username"))
    ids = [r.reviewer_id for r in done]
    annotations: dict[int, list[Annotation]] = defaultdict(list)
    for a in (Annotation.objects.filter(turn_id=item.turn_id, author_id__in=ids, deleted_at__isnull=True,
                                        is_gold=False)
              .prefetch_related("tags").order_by(F("start").asc(nulls_first=True), "pk")):
        annotations[a.author_id].append(a)
    scores: dict[int, dict[int, Score]] = defaultdict(dict)
    for s in Score.objects.filter(turn_id=item.turn_id, author_id__in=ids, is_gold=False).select_related("config"):
        scores[s.author_id][s.config_id] = s
    return [ReviewerWork(r.reviewer_id, r.reviewer.username, annotations[r.reviewer_id], scores[r.reviewer_id])
            for r in done]
