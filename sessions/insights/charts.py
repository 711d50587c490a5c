"""The dashboard's charts as plain data: labels, series, units and, for every point, the URL it drills down to.

The same ``Chart`` feeds the canvas (through ``json_script``), the accessible table under it and its CSV download,
so the three always agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from sessions.insights.selectors import KINDS, RATES, Dashboard, DashboardFilters, Figures
from sessions.models import FeedbackKind

PALETTE = (
    "#4f6bed", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#2e86ab", "#c0392b", "#6a994e", "#d35400", "#7f8c8d",
)  # fmt: skip
KIND_COLOURS = {
    "thumbs_up": "#2e9d5b", "thumbs_down": "#d64545", "rating": "#f3a712", "category": "#8e44ad",
    "comment": "#2e86ab", "correction": "#c0392b", "copy": "#17a398", "abandon": "#7f8c8d",
    "regenerate": "#e67e22", "rephrase": "#b07d2b",
}  # fmt: skip
#: Most series a split chart shows (the rest would be unreadable); the table and CSV list them all.
MAX_SERIES = 8
#: The feedback kind whose sessions a rate's point drills down to.
RATE_DRILL = {
    "negative_per_1k_turns": {"negative": "on"},
    "abandonment_pct": {"feedback": "abandon"},
    "regenerate_pct": {"feedback": "regenerate"},
    "copy_pct": {"feedback": "copy"},
}
SPLIT_LABELS = {"model_version": "model version", "environment": "environment", "user_role": "user role"}
NONE_LABEL = "(none)"


@dataclass
class Series:
    label: str
    data: list[float | int | None]
    links: list[str]
    colour: str


@dataclass
class Chart:
    id: str
    title: str
    unit: str
    kind: str  # "bar" | "line"
    labels: list[str]
    series: list[Series] = field(default_factory=list)
    stacked: bool = False
    horizontal: bool = False
    description: str = ""
    #: What the first column of the table/CSV holds.
    label_heading: str = "Period"

    @property
    def is_empty(self) -> bool:
        return not any(v for s in self.series for v in s.data)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "unit": self.unit, "kind": self.kind, "labels": self.labels,
            "stacked": self.stacked, "horizontal": self.horizontal,
            "series": [{"label": s.label, "data": s.data, "links": s.links, "colour": s.colour} for s in self.series],
        }  # fmt: skip

    def table_rows(self) -> list[list[Any]]:
        """One row per label: the label, then each series' value."""
        return [[label, *(s.data[i] for s in self.series)] for i, label in enumerate(self.labels)]

    def table_heading(self) -> list[str]:
        return [self.label_heading, *(s.label for s in self.series)]


def _bucket_label(start: dt.date, unit: str) -> str:
    if unit == "week":
        return f"week of {start.isoformat()}"
    if unit == "month":
        return start.strftime("%Y-%m")
    return start.isoformat()


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def sessions_url(filters: DashboardFilters, start: dt.date, end: dt.date, **extra: str) -> str:
    """The session list filtered to sessions started in [start, end] (inclusive days) and the dashboard filters."""
    params = {"started_from": start.isoformat(), "started_to": end.isoformat()}
    for name in ("environment", "user_role", "app_version"):
        value = getattr(filters, name)
        if value:
            params[name] = value
    params.update({k: v for k, v in extra.items() if v})
    return f"{reverse('conversations:list')}?{urlencode(params)}"


def spans_url(filters: DashboardFilters, start: dt.date, end: dt.date, tag_id: int) -> str:
    params = {"tag": str(tag_id), "date_from": start.isoformat(), "date_to": end.isoformat()}
    for name in ("environment", "user_role", "app_version"):
        value = getattr(filters, name)
        if value:
            params[name] = value
    return f"{reverse('insights:spans')}?{urlencode(params)}"


def _keyed(d: Dashboard) -> list[tuple[dt.date, dt.date, str]]:
    """(bucket key, last day, label) for each x position; the key is the bucket's own first day."""
    unit = d.filters.unit
    from sessions.insights.selectors import bucket_start  # noqa: PLC0415

    keys = [(bucket_start(start, unit), end) for start, end in d.buckets]
    return [(key, end, _bucket_label(key, unit)) for key, end in keys]


def feedback_by_kind(d: Dashboard) -> Chart:
    xs = _keyed(d)
    starts = [start for start, _ in d.buckets]
    chart = Chart(
        id="feedback-by-kind", title="Feedback events by type", unit="events", kind="bar", stacked=True,
        labels=[label for _, _, label in xs],
        description="End-user feedback events per period, stacked by type. Click a bar segment for its sessions.",
    )
    labels = dict(FeedbackKind.choices)
    for kind in KINDS:
        data = [d.by_bucket.get(key, Figures()).values.get(kind, 0) for key, _, _ in xs]
        if not any(data):
            continue
        links = [sessions_url(d.filters, s, e, feedback=kind) for s, (_, e, _) in zip(starts, xs, strict=True)]
        chart.series.append(Series(str(labels[kind]), data, links, KIND_COLOURS[kind]))
    return chart


def negative_by_split(d: Dashboard) -> Chart:
    split = d.filters.split
    xs = _keyed(d)
    starts = [start for start, _ in d.buckets]
    chart = Chart(
        id="negative-by-split", title=f"Negative feedback per 1,000 turns by {SPLIT_LABELS[split]}",
        unit="per 1k turns", kind="line", labels=[label for _, _, label in xs],
        description="Negative feedback events (thumbs down, corrections, abandons, regenerates, rephrases, "
        "low ratings) per 1,000 turns. Click a point for the sessions with negative feedback.",
    )
    # The busiest values first; beyond MAX_SERIES the chart would be unreadable.
    ranked = sorted(
        d.by_split.items(), key=lambda item: (-sum(f.turns for f in item[1].values()), item[0] or "")
    )[:MAX_SERIES]
    for i, (value, per_bucket) in enumerate(ranked):
        data = [_round(per_bucket.get(key, Figures()).negative_per_1k_turns) for key, _, _ in xs]
        links = [
            sessions_url(d.filters, s, e, negative="on", **({split: value} if value else {}))
            for s, (_, e, _) in zip(starts, xs, strict=True)
        ]
        chart.series.append(Series(value or NONE_LABEL, data, links, PALETTE[i % len(PALETTE)]))
    return chart


def rates_over_time(d: Dashboard) -> Chart:
    xs = _keyed(d)
    starts = [start for start, _ in d.buckets]
    chart = Chart(
        id="rates", title="Abandonment, regenerate and copy rates", unit="%", kind="line",
        labels=[label for _, _, label in xs],
        description="Abandonment: % of sessions with an abandon event. Regenerate and copy: events per 100 model "
        "replies. Click a point for the sessions with that event.",
    )
    for i, name in enumerate(("abandonment_pct", "regenerate_pct", "copy_pct")):
        data = [_round(d.by_bucket.get(key, Figures()).rate(name)) for key, _, _ in xs]
        links = [sessions_url(d.filters, s, e, **RATE_DRILL[name]) for s, (_, e, _) in zip(starts, xs, strict=True)]
        chart.series.append(Series(f"{RATES[name][0]} ({RATES[name][1]})", data, links, PALETTE[i + 1]))
    return chart


def categories(d: Dashboard) -> Chart:
    f = d.filters
    chart = Chart(
        id="categories", title="Top feedback categories", unit="events", kind="bar", horizontal=True,
        labels=[name for name, _ in d.categories], label_heading="Category",
        description="Feedback events by the category the end user picked, over the whole range.",
    )
    chart.series.append(Series(
        "Events", [n for _, n in d.categories],
        [sessions_url(f, f.date_from, f.date_to, category=name) for name, _ in d.categories], PALETTE[4],
    ))
    return chart


def reviewer_tags(d: Dashboard) -> Chart:
    xs = _keyed(d)
    starts = [start for start, _ in d.buckets]
    chart = Chart(
        id="reviewer-tags", title="Reviewer tags on spans", unit="tagged spans", kind="bar", stacked=True,
        labels=[label for _, _, label in xs],
        description="Spans reviewers tagged in the review workspace, by the start day of their session. Click a "
        "segment for the spans.",
    )
    ranked = sorted(d.reviewer_tags.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    for i, (tag_id, per_bucket) in enumerate(ranked[:MAX_SERIES * 2]):
        data = [per_bucket.get(key, 0) for key, _, _ in xs]
        links = [spans_url(d.filters, s, e, tag_id) for s, (_, e, _) in zip(starts, xs, strict=True)]
        chart.series.append(Series(d.reviewer_tag_names[tag_id], data, links, PALETTE[i % len(PALETTE)]))
    return chart


def compare_rates(d: Dashboard) -> Chart | None:
    f = d.filters
    if not (f.model_a and f.model_b):
        return None
    chart = Chart(
        id="compare-rates", title=f"{f.model_a} (A) and {f.model_b} (B): rates", unit="rate", kind="bar",
        labels=[f"{label} ({unit})" for label, unit in RATES.values()], label_heading="Rate",
        description="The same rates for both model versions over the whole range. Click a bar for the sessions.",
    )
    for i, model in enumerate((f.model_a, f.model_b)):
        figures = d.by_model.get(model, Figures())
        chart.series.append(Series(
            f"{'AB'[i]}: {model}",
            [_round(figures.rate(name)) for name in RATES],
            [sessions_url(f, f.date_from, f.date_to, model_version=model, **RATE_DRILL[name]) for name in RATES],
            PALETTE[i],
        ))
    return chart


def compare_over_time(d: Dashboard) -> Chart | None:
    f = d.filters
    if not (f.model_a and f.model_b):
        return None
    xs = _keyed(d)
    starts = [start for start, _ in d.buckets]
    chart = Chart(
        id="compare-negative", title="Negative feedback per 1,000 turns: A and B over time", unit="per 1k turns",
        kind="line", labels=[label for _, _, label in xs],
        description="Click a point for that model version's sessions with negative feedback in the period.",
    )
    for i, model in enumerate((f.model_a, f.model_b)):
        per_bucket = d.by_model_bucket.get(model, {})
        chart.series.append(Series(
            f"{'AB'[i]}: {model}",
            [_round(per_bucket.get(key, Figures()).negative_per_1k_turns) for key, _, _ in xs],
            [sessions_url(f, s, e, negative="on", model_version=model) for s, (_, e, _) in zip(starts, xs,
                                                                                             strict=True)],
            PALETTE[i],
        ))
    return chart


@dataclass(frozen=True)
class CompareRow:
    label: str
    a: float | int | None
    b: float | int | None
    unit: str

    @property
    def difference(self) -> float | int | None:
        if self.a is None or self.b is None:
            return None
        return round(self.b - self.a, 2)


def compare_table(d: Dashboard) -> list[CompareRow]:
    f = d.filters
    a, b = d.by_model.get(f.model_a, Figures()), d.by_model.get(f.model_b, Figures())
    rows = [
        CompareRow("Sessions", a.sessions, b.sessions, "sessions"),
        CompareRow("Turns", a.turns, b.turns, "turns"),
        CompareRow("Feedback events", a.feedback, b.feedback, "events"),
    ]
    rows += [CompareRow(label, _round(a.rate(name)), _round(b.rate(name)), unit) for name, (label, unit) in
             RATES.items()]
    return rows


def all_charts(d: Dashboard) -> list[Chart]:
    charts = [feedback_by_kind(d), negative_by_split(d), rates_over_time(d)]
    charts += [c for c in (compare_rates(d), compare_over_time(d)) if c is not None]
    charts += [categories(d), reviewer_tags(d)]
    return charts
