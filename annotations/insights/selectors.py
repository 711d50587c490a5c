"""Reads of the insights app: the dashboard's figures (from the daily rollup), reviewer-tag counts, the spans behind
a reviewer-tag point, session tags for list rows, saved views, and counting the matches of a list filter.

The dashboard runs a fixed number of queries whatever the data size: one over the rollup (every series at once,
through GROUPING SETS), one over the category rollup, one for reviewer tags, and small look-ups.
"""

# SQL assembled from module constants and model table names; request values are parameters.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Max, Min

from annotations.insights.models import (
    GRAIN_BITS,
    DailyCategoryRollup,
    DailyRollup,
    RollupState,
)
from annotations.insights.stats import wilson
from annotations.models import Annotation, Score, ScoreConfig, Tag
from sessions.models import Conversation, ImportBatch

KINDS = ("thumbs_up", "thumbs_down", "rating", "category", "comment", "correction", "copy", "abandon", "regenerate",
         "rephrase")  # fmt: skip
SPLITS = ("model_version", "environment", "user_role")
DEFAULT_DAYS = 90
#: Longest range shown by day; longer ones by week, and beyond WEEKLY_MAX_DAYS by month.
DAILY_MAX_DAYS = 92
WEEKLY_MAX_DAYS = 730
SUMS = ("sessions", "turns", "model_turns", "feedback", "negative", "negative_sessions", *KINDS, "abandoned_sessions")


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


@dataclass(frozen=True)
class DashboardFilters:
    """The dashboard's filters. ``date_to`` is inclusive; the dates are session start days (UTC)."""

    date_from: dt.date
    date_to: dt.date
    environment: str = ""
    user_role: str = ""
    app_version: str = ""
    split: str = "model_version"
    model_a: str = ""
    model_b: str = ""
    #: Leave rates from a sample under the minimum out of the charts (else they are flagged).
    hide_small: bool = False

    @property
    def unit(self) -> str:
        days = (self.date_to - self.date_from).days + 1
        if days <= DAILY_MAX_DAYS:
            return "day"
        return "week" if days <= WEEKLY_MAX_DAYS else "month"

    def where(self, alias: str = "r", day_column: str = "day") -> tuple[str, list[Any]]:
        conds = [f"{alias}.{day_column} >= %s", f"{alias}.{day_column} <= %s"]
        params: list[Any] = [self.date_from, self.date_to]
        for name in ("environment", "user_role", "app_version"):
            value = getattr(self, name)
            if value:
                conds.append(f"{alias}.{name} = %s")
                params.append(value)
        return " AND ".join(conds), params


def bucket_start(day: dt.date, unit: str) -> dt.date:
    if unit == "week":
        return day - dt.timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def buckets(filters: DashboardFilters) -> list[tuple[dt.date, dt.date]]:
    """The chart's x positions: (first day, last day) of each bucket, clipped to the filter's range."""
    unit = filters.unit
    out = []
    start = bucket_start(filters.date_from, unit)
    while start <= filters.date_to:
        if unit == "day":
            nxt = start + dt.timedelta(days=1)
        elif unit == "week":
            nxt = start + dt.timedelta(days=7)
        else:
            nxt = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        out.append((max(start, filters.date_from), min(nxt - dt.timedelta(days=1), filters.date_to)))
        start = nxt
    return out


@dataclass
class Figures:
    """Summed rollup columns, with the dashboard's rates."""

    values: dict[str, int] = field(default_factory=dict)

    def __getattr__(self, name: str) -> int:
        if name in SUMS:
            return self.values.get(name, 0)
        raise AttributeError(name)

    @property
    def negative_per_1k_turns(self) -> float | None:
        return 1000 * self.negative / self.turns if self.turns else None

    @property
    def abandonment_pct(self) -> float | None:
        return 100 * self.abandoned_sessions / self.sessions if self.sessions else None

    @property
    def regenerate_pct(self) -> float | None:
        return 100 * self.regenerate / self.model_turns if self.model_turns else None

    @property
    def copy_pct(self) -> float | None:
        return 100 * self.copy / self.model_turns if self.model_turns else None

    def rate(self, name: str) -> float | None:
        return getattr(self, name)

    def sample(self, name: str) -> int:
        """How many trials rate ``name`` divides by (turns, conversations or model replies)."""
        return self.values.get(RATE_PARTS[name][1], 0)

    def interval(self, name: str) -> tuple[float, float] | None:
        """The 95% Wilson interval of rate ``name``, in the rate's own unit (percent, per 1k); None without data."""
        numerator, denominator, scale = RATE_PARTS[name]
        bounds = wilson(self.values.get(numerator, 0), self.values.get(denominator, 0))
        return None if bounds is None else (bounds[0] * scale, bounds[1] * scale)

    def __add__(self, other: Figures) -> Figures:
        return Figures({name: self.values.get(name, 0) + other.values.get(name, 0) for name in SUMS})


RATES = {
    "negative_per_1k_turns": ("Negative feedback per 1,000 turns", "per 1k turns"),
    "abandonment_pct": ("Abandonment", "% of conversations"),
    "regenerate_pct": ("Regenerate", "% of model replies"),
    "copy_pct": ("Copy", "% of model replies"),
}
#: Each rate as (events, trials, scale): what its interval and sample size are computed from.
RATE_PARTS = {
    "negative_per_1k_turns": ("negative", "turns", 1000),
    "abandonment_pct": ("abandoned_sessions", "sessions", 100),
    "regenerate_pct": ("regenerate", "model_turns", 100),
    "copy_pct": ("copy", "model_turns", 100),
}


@dataclass
class Dashboard:
    filters: DashboardFilters
    buckets: list[tuple[dt.date, dt.date]]
    totals: Figures
    by_bucket: dict[dt.date, Figures]
    #: split dimension value -> bucket -> figures
    by_split: dict[str, dict[dt.date, Figures]]
    by_model: dict[str, Figures]
    #: model version -> bucket -> figures
    by_model_bucket: dict[str, dict[dt.date, Figures]]
    categories: list[tuple[str, int]]
    #: reviewer tag id -> bucket -> annotations
    reviewer_tags: dict[int, dict[dt.date, int]]
    reviewer_tag_names: dict[int, str]
    #: numeric and yes/no rubric field (key, name) -> model version -> (mean score, number of scores)
    rubric_means: dict[tuple[str, str], dict[str, tuple[float, int]]] = field(default_factory=dict)


# What each grouping set is, by its GROUPING() bits: totals per bucket, per (bucket, split value), per model over the
# range, per (bucket, model).
_TOTAL, _SPLIT, _MODEL, _MODEL_BUCKET = "total", "split", "model", "model_bucket"


def grain_for(filters: DashboardFilters) -> int:
    """The coarsest rollup grain that keeps every dimension the dashboard filters or splits by."""
    bits = sum(bit for name, bit in GRAIN_BITS.items() if getattr(filters, name) or filters.split == name)
    return int(bits)


def _rollup_query(filters: DashboardFilters) -> tuple[str, list[Any], dict[int, tuple[str, ...]]]:
    where, params = filters.where()
    where = f"r.grain = %s AND {where}"
    params = [grain_for(filters), *params]
    sums = ", ".join(f"sum(r.{name})::bigint AS {name}" for name in SUMS)
    split = filters.split if filters.split in SPLITS else "model_version"
    # By day the bucket is the day itself: no date_trunc per row.
    bucket = "r.day" if filters.unit == "day" else "date_trunc(%s, r.day::timestamp)::date"
    bucket_params = [] if filters.unit == "day" else [filters.unit]
    if split == "model_version":
        # (bucket, model) serves both the split chart and the A/B comparison.
        grouping = "GROUPING(r.b, r.model_version)"
        sets = "(r.b), (r.b, r.model_version), (r.model_version)"
        kinds = {1: (_TOTAL,), 0: (_SPLIT, _MODEL_BUCKET), 2: (_MODEL,)}
    else:
        grouping = f"GROUPING(r.b, r.{split}, r.model_version)"
        sets = f"(r.b), (r.b, r.{split}), (r.model_version), (r.b, r.model_version)"
        kinds = {3: (_TOTAL,), 1: (_SPLIT,), 6: (_MODEL,), 2: (_MODEL_BUCKET,)}
    sql = f"""
        SELECT {grouping} AS g, r.b, r.{split} AS split_value, r.model_version, {sums}
        FROM (
            SELECT {bucket} AS b, r.*
            FROM {_q(DailyRollup._meta.db_table)} r WHERE {where}
        ) r
        GROUP BY GROUPING SETS ({sets})
    """
    return sql, [*bucket_params, *params], kinds


def dashboard(filters: DashboardFilters) -> Dashboard:
    """Every figure the dashboard shows, for ``filters``. Four queries, all over aggregated tables (and the
    reviewers' annotations and scores, which are human-made and few)."""
    sql, params, kinds = _rollup_query(filters)
    unit = filters.unit
    totals = Figures()
    by_bucket: dict[dt.date, Figures] = {}
    by_split: dict[str, dict[dt.date, Figures]] = defaultdict(dict)
    by_model: dict[str, Figures] = {}
    by_model_bucket: dict[str, dict[dt.date, Figures]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for g, bucket, split_value, model, *sums in cursor.fetchall():
            figures = Figures(dict(zip(SUMS, (int(v or 0) for v in sums), strict=True)))
            for kind in kinds[g]:
                if kind == _TOTAL:
                    by_bucket[bucket] = figures
                    for name, value in figures.values.items():
                        totals.values[name] = totals.values.get(name, 0) + value
                elif kind == _SPLIT:
                    by_split[split_value][bucket] = figures
                elif kind == _MODEL:
                    by_model[model] = figures
                else:
                    by_model_bucket[model][bucket] = figures

        where, params = filters.where()
        # Categories are not split: the grain of the filters alone.
        grain = sum(bit for name, bit in GRAIN_BITS.items() if getattr(filters, name))
        cursor.execute(
            f"SELECT r.category, sum(r.events)::bigint FROM {_q(DailyCategoryRollup._meta.db_table)} r "
            f"WHERE r.grain = %s AND {where} GROUP BY r.category ORDER BY 2 DESC, 1 LIMIT 15",
            [grain, *params],
        )
        categories = [(name, int(n)) for name, n in cursor.fetchall()]
        reviewer_tags, names = _reviewer_tags(cursor, filters, unit)
        rubric_means = _rubric_means(cursor, filters)
    return Dashboard(
        filters=filters,
        buckets=buckets(filters),
        totals=totals,
        by_bucket=by_bucket,
        by_split=dict(by_split),
        by_model=by_model,
        by_model_bucket=dict(by_model_bucket),
        categories=categories,
        reviewer_tags=reviewer_tags,
        reviewer_tag_names=names,
        rubric_means=rubric_means,
    )


def dashboard_compared(filters: DashboardFilters) -> Dashboard:
    """``dashboard(filters)``; unless both are chosen, the compared model versions A and B default to the two
    busiest of the range."""
    data = dashboard(filters)
    if not (filters.model_a and filters.model_b):
        busiest = [m for m, _ in sorted(data.by_model.items(), key=lambda i: (-i[1].turns, i[0] or "")) if m]
        a = filters.model_a or next((m for m in busiest if m != filters.model_b), "")
        b = filters.model_b or next((m for m in busiest if m != a), "")
        data.filters = dataclasses.replace(filters, model_a=a, model_b=b)
    return data


def tag_name(tag_id: int) -> str:
    """The reviewer tag's name, or "" when there is no such tag."""
    return Tag.objects.filter(pk=tag_id).values_list("name", flat=True).first() or ""


def _annotation_tables() -> tuple[str, str, str]:
    return (
        _q(Annotation._meta.db_table),
        _q(Annotation.tags.through._meta.db_table),
        _q(Tag._meta.db_table),
    )


def _session_conditions(filters: DashboardFilters, alias: str = "c") -> tuple[str, list[Any]]:
    """The dashboard filters on sessions themselves (start day range in UTC, dimensions)."""
    conds = [
        f"{alias}.started_at >= (%s::timestamp AT TIME ZONE 'UTC')",
        f"{alias}.started_at < (%s::timestamp AT TIME ZONE 'UTC')",
    ]
    params: list[Any] = [filters.date_from, filters.date_to + dt.timedelta(days=1)]
    for name in ("environment", "user_role", "app_version"):
        value = getattr(filters, name)
        if value:
            conds.append(f"{alias}.{name} = %s")
            params.append(value)
    return " AND ".join(conds), params


def _reviewer_tags(cursor: Any, filters: DashboardFilters, unit: str) -> tuple[dict, dict]:
    annotation, through, tag = _annotation_tables()
    conv = _q(Conversation._meta.db_table)
    where, params = _session_conditions(filters)
    cursor.execute(
        f"""
        SELECT date_trunc(%s, (c.started_at AT TIME ZONE 'UTC'))::date AS b, at.tag_id, t.name, count(*)
        FROM {annotation} a
        JOIN {through} at ON at.annotation_id = a.id
        JOIN {tag} t ON t.id = at.tag_id
        JOIN {conv} c ON c.id = a.conversation_id
        WHERE a.deleted_at IS NULL AND {where}
        GROUP BY 1, 2, 3
        """,
        [unit, *params],
    )
    counts: dict[int, dict[dt.date, int]] = defaultdict(dict)
    names: dict[int, str] = {}
    for bucket, tag_id, name, n in cursor.fetchall():
        counts[tag_id][bucket] = int(n)
        names[tag_id] = name
    return dict(counts), names


def _rubric_means(cursor: Any, filters: DashboardFilters) -> dict:
    """Mean reviewer score of each numeric and yes/no rubric field (all its versions) per model version, for the
    conversations the dashboard filters to; gold scores are left out (they repeat a reviewer's)."""
    score, config = _q(Score._meta.db_table), _q(ScoreConfig._meta.db_table)
    conv = _q(Conversation._meta.db_table)
    where, params = _session_conditions(filters)
    cursor.execute(
        f"""
        SELECT k.key, max(k.name), c.model_version, avg(s.value), count(*)
        FROM {score} s JOIN {config} k ON k.id = s.config_id JOIN {conv} c ON c.id = s.conversation_id
        WHERE NOT s.is_gold AND s.value IS NOT NULL AND {where}
        GROUP BY 1, 3
        """,
        params,
    )
    means: dict[tuple[str, str], dict[str, tuple[float, int]]] = defaultdict(dict)
    for key, name, model, mean, n in cursor.fetchall():
        means[(key, name)][model or ""] = (float(mean), int(n))
    return dict(means)


@dataclass(frozen=True)
class SpanRow:
    annotation_id: int
    conversation_id: int
    conversation_title: str
    exact: str
    body: str
    author: str
    created_at: dt.datetime
    model_version: str


def reviewer_tag_spans(*, filters: DashboardFilters, tag_id: int, limit: int = 200) -> list[SpanRow]:
    """The live annotations carrying reviewer tag ``tag_id`` on sessions matching ``filters`` (newest first)."""
    start = dt.datetime.combine(filters.date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(filters.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    qs = Annotation.objects.filter(
        tags=tag_id, deleted_at__isnull=True,
        conversation__started_at__gte=start, conversation__started_at__lt=end,
    )
    for name in ("environment", "user_role", "app_version"):
        value = getattr(filters, name)
        if value:
            qs = qs.filter(**{f"conversation__{name}": value})
    rows = qs.select_related("author", "conversation").order_by("-created_at", "-id")[:limit]
    return [
        SpanRow(
            annotation_id=a.pk,
            conversation_id=a.conversation_id,
            conversation_title=a.conversation.title or a.conversation.external_id,
            exact=a.exact,
            body=a.body,
            author=a.author.get_username(),
            created_at=a.created_at,
            model_version=a.conversation.model_version,
        )
        for a in rows
    ]


def rollup_day_range() -> tuple[dt.date | None, dt.date | None]:
    """The first and the newest session day in the rollup (the dashboard's default range fits between them)."""
    days = DailyRollup.objects.filter(grain=0).aggregate(first=Min("day"), last=Max("day"))
    return days["first"], days["last"]


@dataclass(frozen=True)
class Freshness:
    refreshed_at: dt.datetime | None
    full_rebuild_at: dt.datetime | None
    #: Imports finished after the rollup's last catch-up (their days may not be counted yet).
    pending_imports: int


def rollup_freshness() -> Freshness:
    """When the rollup was refreshed, and how many imports finished after that (one query)."""
    state = _q(RollupState._meta.db_table)
    batch = _q(ImportBatch._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.refreshed_at, s.full_rebuild_at,
                   (SELECT count(*) FROM {batch} b
                    WHERE b.id > coalesce(s.last_batch_id, 0)
                      AND (s.refreshed_at IS NULL OR b.finished_at > s.refreshed_at))
            FROM (SELECT 1) AS one LEFT JOIN {state} s ON s.id = 1
            """
        )
        refreshed, rebuilt, pending = cursor.fetchone()
    return Freshness(refreshed_at=refreshed, full_rebuild_at=rebuilt, pending_imports=int(pending))
