"""The dashboard's charts as plain data: labels, series, units and, for every point, the URL it drills down to.

The same ``Chart`` feeds the canvas (through ``json_script``), the accessible table under it and its CSV download,
so the three always agree.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from annotations.insights.selectors import KINDS, RATES, Dashboard, DashboardFilters, Figures, bucket_start
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
RATE_SHORT = {
    "negative_per_1k_turns": "Negative per 1k turns",
    "abandonment_pct": "Abandonment %",
    "regenerate_pct": "Regenerate %",
    "copy_pct": "Copy %",
}
SPLIT_LABELS = {"model_version": "model version", "environment": "environment", "user_role": "user role"}
NONE_LABEL = "(none)"


Params = dict[str, str]


@dataclass
class Series:
    label: str
    data: list[float | int | None]
    colour: str
    #: Drill-down parameters of every point of the series (e.g. the feedback kind)...
    link_params: Params = field(default_factory=dict)
    #: ...and of each point on its own (e.g. the category of a bar), when they differ.
    point_params: list[Params] | None = None


@dataclass
class Chart:
    """A chart's data. A point's drill-down URL is ``link_base`` with the parameters of the chart
    (``link_common``), of its x position (``link_x``), of its series and of the point itself merged in that order;
    the page's script builds it the same way (``link``), so no URL is rendered per point."""

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
    link_base: str = ""
    link_common: Params = field(default_factory=dict)
    link_x: list[Params] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not any(v for s in self.series for v in s.data)

    def link(self, series_index: int, index: int) -> str:
        """The drill-down URL of one point (what static/js/insights.js opens on a click)."""
        s = self.series[series_index]
        params = {**self.link_common, **(self.link_x[index] if self.link_x else {}), **s.link_params,
                  **(s.point_params[index] if s.point_params else {})}
        return f"{self.link_base}?{urlencode(params)}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "unit": self.unit, "kind": self.kind, "labels": self.labels,
            "stacked": self.stacked, "horizontal": self.horizontal, "link_base": self.link_base,
            "link_common": self.link_common, "link_x": self.link_x,
            "series": [{"label": s.label, "data": s.data, "colour": s.colour, "link_params": s.link_params,
                        "point_params": s.point_params} for s in self.series],
        }  # fmt: skip

    def table_rows(self) -> list[list[Any]]:
        """One row per label: the label, then each series' value."""
        return [[label, *(s.data[i] for s in self.series)] for i, label in enumerate(self.labels)]

    def table_heading(self) -> list[str]:
        return [self.label_heading, *(s.label for s in self.series)]

    def table_cells(self) -> list[tuple[str, list[str]]]:
        """The rows of the chart's accessible table: the label, and each value as text ("—" for no value)."""
        return [(row[0], ["—" if v is None else _number(v) for v in row[1:]]) for row in self.table_rows()]


def _number(value: float | int) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"chart values are numbers, not {type(value).__name__}")
    return str(value)


def _bucket_label(start: dt.date, unit: str) -> str:
    if unit == "week":
        return f"week of {start.isoformat()}"
    if unit == "month":
        return start.strftime("%Y-%m")
    return start.isoformat()


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _common(filters: DashboardFilters) -> Params:
    names = ("environment", "user_role", "app_version")
    return {name: getattr(filters, name) for name in names if getattr(filters, name)}


def sessions_url(filters: DashboardFilters, start: dt.date, end: dt.date, **extra: str) -> str:
    """The session list filtered to sessions started in [start, end] (inclusive days) and the dashboard filters."""
    params = {"started_from": start.isoformat(), "started_to": end.isoformat(), **_common(filters)}
    params.update({k: v for k, v in extra.items() if v})
    return f"{reverse('conversations:list')}?{urlencode(params)}"


def _time_chart(d: Dashboard, *, spans: bool = False, **kwargs: Any) -> tuple[Chart, list[dt.date]]:
    """A chart over the dashboard's periods, drilling down to the session list (or the reviewer-tag spans) of
    each period; returns it with the bucket keys of its x positions."""
    unit = d.filters.unit
    keys = [bucket_start(start, unit) for start, _ in d.buckets]
    names = ("date_from", "date_to") if spans else ("started_from", "started_to")
    chart = Chart(
        labels=[_bucket_label(key, unit) for key in keys],
        link_base=reverse("insights:spans" if spans else "conversations:list"),
        link_common=_common(d.filters),
        link_x=[{names[0]: start.isoformat(), names[1]: end.isoformat()} for start, end in d.buckets],
        **kwargs,
    )
    return chart, keys


def feedback_by_kind(d: Dashboard) -> Chart:
    chart, keys = _time_chart(
        d, id="feedback-by-kind", title="Feedback events by type", unit="events", kind="bar", stacked=True,
        description="End-user feedback events per period, stacked by type. Click a bar segment for its sessions.",
    )
    labels = dict(FeedbackKind.choices)
    empty = Figures()
    for kind in KINDS:
        data = [d.by_bucket.get(key, empty).values.get(kind, 0) for key in keys]
        if any(data):
            chart.series.append(Series(str(labels[kind]), data, KIND_COLOURS[kind], {"feedback": kind}))
    return chart


def negative_by_split(d: Dashboard) -> Chart:
    split = d.filters.split
    chart, keys = _time_chart(
        d, id="negative-by-split", title=f"Negative feedback per 1,000 turns by {SPLIT_LABELS[split]}",
        unit="per 1k turns", kind="line",
        description="Negative feedback events (thumbs down, corrections, abandons, regenerates, rephrases, "
        "low ratings) per 1,000 turns. Click a point for the conversations with negative feedback.",
    )
    # The busiest values first; beyond MAX_SERIES the chart would be unreadable.
    ranked = sorted(
        d.by_split.items(), key=lambda item: (-sum(f.turns for f in item[1].values()), item[0] or "")
    )[:MAX_SERIES]
    empty = Figures()
    for i, (value, per_bucket) in enumerate(ranked):
        data = [_round(per_bucket.get(key, empty).negative_per_1k_turns) for key in keys]
        params = {"negative": "on", **({split: value} if value else {})}
        chart.series.append(Series(value or NONE_LABEL, data, PALETTE[i % len(PALETTE)], params))
    return chart


def rates_over_time(d: Dashboard) -> Chart:
    chart, keys = _time_chart(
        d, id="rates", title="Abandonment, regenerate and copy rates", unit="%", kind="line",
        description="Abandonment: % of conversations with an abandon event. Regenerate and copy: events per 100 model "
        "replies. Click a point for the conversations with that event.",
    )
    empty = Figures()
    for i, name in enumerate(("abandonment_pct", "regenerate_pct", "copy_pct")):
        data = [_round(d.by_bucket.get(key, empty).rate(name)) for key in keys]
        chart.series.append(Series(f"{RATES[name][0]} ({RATES[name][1]})", data, PALETTE[i + 1], RATE_DRILL[name]))
    return chart


def categories(d: Dashboard) -> Chart:
    f = d.filters
    chart = Chart(
        id="categories", title="Top feedback categories", unit="events", kind="bar", horizontal=True,
        labels=[name for name, _ in d.categories], label_heading="Category",
        description="Feedback events by the category the end user picked, over the whole range.",
        link_base=reverse("conversations:list"),
        link_common={"started_from": f.date_from.isoformat(), "started_to": f.date_to.isoformat(), **_common(f)},
    )
    chart.series.append(Series(
        "Events", [n for _, n in d.categories], PALETTE[4],
        point_params=[{"category": name} for name, _ in d.categories],
    ))
    return chart


def reviewer_tags(d: Dashboard) -> Chart:
    chart, keys = _time_chart(
        d, spans=True, id="reviewer-tags", title="Reviewer tags on spans", unit="tagged spans", kind="bar",
        stacked=True,
        description="Spans reviewers tagged in the review workspace, by the start day of their conversation. Click a "
        "segment for the spans.",
    )
    ranked = sorted(d.reviewer_tags.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    for i, (tag_id, per_bucket) in enumerate(ranked[:MAX_SERIES * 2]):
        data = [per_bucket.get(key, 0) for key in keys]
        chart.series.append(Series(d.reviewer_tag_names[tag_id], data, PALETTE[i % len(PALETTE)],
                                   {"tag": str(tag_id)}))
    return chart


def compare_rates(d: Dashboard) -> Chart | None:
    f = d.filters
    if not (f.model_a and f.model_b):
        return None
    chart = Chart(
        id="compare-rates", title=f"{f.model_a} (A) and {f.model_b} (B): rates", unit="rate", kind="bar",
        labels=[RATE_SHORT[name] for name in RATES], label_heading="Rate",
        description="The same rates for both model versions over the whole range. Click a bar for the sessions.",
        link_base=reverse("conversations:list"),
        link_common={"started_from": f.date_from.isoformat(), "started_to": f.date_to.isoformat(), **_common(f)},
        link_x=[RATE_DRILL[name] for name in RATES],
    )
    for i, model in enumerate((f.model_a, f.model_b)):
        figures = d.by_model.get(model, Figures())
        chart.series.append(Series(
            f"{'AB'[i]}: {model}", [_round(figures.rate(name)) for name in RATES], PALETTE[i],
            {"model_version": model},
        ))
    return chart


def compare_over_time(d: Dashboard) -> Chart | None:
    f = d.filters
    if not (f.model_a and f.model_b):
        return None
    chart, keys = _time_chart(
        d, id="compare-negative", title="Negative feedback per 1,000 turns: A and B over time", unit="per 1k turns",
        kind="line",
        description="Click a point for that model version's conversations with negative feedback in the period.",
    )
    empty = Figures()
    for i, model in enumerate((f.model_a, f.model_b)):
        per_bucket = d.by_model_bucket.get(model, {})
        chart.series.append(Series(
            f"{'AB'[i]}: {model}", [_round(per_bucket.get(key, empty).negative_per_1k_turns) for key in keys],
            PALETTE[i], {"negative": "on", "model_version": model},
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


def _csv_cell(value: object) -> object:
    """Spreadsheets run a cell that starts with = + - @ (or a tab/CR) as a formula: prefix such text with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def chart_csv(chart: Chart) -> str:
    """The chart's table (heading and rows) as CSV text, safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_csv_cell(h) for h in chart.table_heading()])
    for row in chart.table_rows():
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()
