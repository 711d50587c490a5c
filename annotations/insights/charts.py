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
from annotations.insights.stats import min_sample
from sessions.models import FeedbackKind

PALETTE = (
    "#4f6bed", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#2e86ab", "#c0392b", "#6a994e", "#d35400", "#7f8c8d",
)  # fmt: skip
KIND_COLOURS = {
    "thumbs_up": "#2e9d5b", "thumbs_down": "#d64545", "rating": "#f3a712", "category": "#8e44ad",
    "comment": "#2e86ab", "correction": "#c0392b", "copy": "#17a398", "abandon": "#7f8c8d",
    "regenerate": "#e67e22", "rephrase": "#b07d2b",
}  # fmt: skip
#: Most series a stacked chart shows (the rest would be unreadable); the table and CSV list them all.
MAX_SERIES = 8
#: Lines a split chart draws: the busiest values, and the rest summed into one "Others" line.
TOP_SPLIT_SERIES = 5
OTHERS_LABEL = "Others"
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
#: The rates in percent; negative feedback is per 1,000 turns and never shares their axis.
PERCENT_RATES = ("abandonment_pct", "regenerate_pct", "copy_pct")
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
    #: For rates: each point's sample size (the trials it divides by) and 95% Wilson interval, in the rate's unit.
    n: list[int] | None = None
    low: list[float | None] | None = None
    high: list[float | None] | None = None

    def is_small(self, index: int, minimum: int) -> bool:
        return self.n is not None and self.data[index] is not None and self.n[index] < minimum


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
    #: Rates from fewer trials are flagged as small samples.
    min_sample: int = 0

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
            "link_common": self.link_common, "link_x": self.link_x, "min_sample": self.min_sample,
            "series": [{"label": s.label, "data": s.data, "colour": s.colour, "link_params": s.link_params,
                        "point_params": s.point_params, "n": s.n, "low": s.low, "high": s.high} for s in self.series],
        }  # fmt: skip

    def table_rows(self) -> list[list[Any]]:
        """One row per label: the label, then each series' value."""
        return [[label, *(s.data[i] for s in self.series)] for i, label in enumerate(self.labels)]

    def table_heading(self) -> list[str]:
        return [self.label_heading, *(s.label for s in self.series)]

    def table_cells(self) -> list[tuple[str, list[str]]]:
        """The rows of the chart's accessible table: the label, and each value as text ("—" for no value); a rate
        with its interval and sample size, and a mark when the sample is small."""
        rows = []
        for i, label in enumerate(self.labels):
            cells = []
            for s in self.series:
                value = s.data[i]
                if value is None:
                    cells.append("—")
                elif s.n is None:
                    cells.append(_number(value))
                else:
                    text = f"{_number(value)} (95% CI {_number(s.low[i])}–{_number(s.high[i])}, n = {s.n[i]})"
                    cells.append(text + (" · small sample" if s.is_small(i, self.min_sample) else ""))
            rows.append((label, cells))
        return rows


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


def rate_series(label: str, figures: list[Figures], name: str, colour: str, params: Params, *,
                hide_small: bool = False) -> Series:
    """A rate over ``figures`` (one per x position) with each point's sample size and 95% interval. With
    ``hide_small`` a point from fewer trials than the minimum sample is left out (no value) instead of flagged."""
    minimum = min_sample()
    data, n, low, high = [], [], [], []
    for f in figures:
        trials, bounds = f.sample(name), f.interval(name)
        hidden = hide_small and trials < minimum
        data.append(None if hidden else _round(f.rate(name)))
        n.append(trials)
        low.append(None if hidden or bounds is None else _round(bounds[0]))
        high.append(None if hidden or bounds is None else _round(bounds[1]))
    return Series(label, data, colour, params, n=n, low=low, high=high)


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
        description=f"Negative feedback events (thumbs down, corrections, abandons, regenerates, rephrases, "
        f"low ratings) per 1,000 turns, for the {TOP_SPLIT_SERIES} busiest values and the rest summed as "
        f"“{OTHERS_LABEL}”; the band around a line is its 95% interval. Click a point for the conversations with "
        "negative feedback.",
    )
    # The busiest values, then the rest as one line: nine model versions as nine lines cannot be read.
    ranked = sorted(
        d.by_split.items(), key=lambda item: (-sum(f.turns for f in item[1].values()), item[0] or "")
    )
    shown, rest = ranked[:TOP_SPLIT_SERIES], ranked[TOP_SPLIT_SERIES:]
    if len(rest) == 1:
        shown, rest = ranked, []
    empty = Figures()
    hide = d.filters.hide_small
    for i, (value, per_bucket) in enumerate(shown):
        params = {"negative": "on", **({split: value} if value else {})}
        chart.series.append(rate_series(value or NONE_LABEL, [per_bucket.get(key, empty) for key in keys],
                                        "negative_per_1k_turns", PALETTE[i % len(PALETTE)], params, hide_small=hide))
    if rest:
        summed = [sum((per_bucket.get(key, empty) for _, per_bucket in rest), Figures()) for key in keys]
        label = f"{OTHERS_LABEL} ({len(rest)} {SPLIT_LABELS[split]}s)"
        chart.series.append(rate_series(label, summed, "negative_per_1k_turns", PALETTE[-1], {"negative": "on"},
                                        hide_small=hide))
    chart.min_sample = min_sample()
    return chart


def rates_over_time(d: Dashboard) -> Chart:
    chart, keys = _time_chart(
        d, id="rates", title="Abandonment, regenerate and copy rates", unit="%", kind="line",
        description="Abandonment: % of conversations with an abandon event. Regenerate and copy: events per 100 model "
        "replies. The band around a line is its 95% interval. Click a point for the conversations with that event.",
    )
    empty = Figures()
    for i, name in enumerate(PERCENT_RATES):
        chart.series.append(rate_series(
            f"{RATES[name][0]} ({RATES[name][1]})", [d.by_bucket.get(key, empty) for key in keys], name,
            PALETTE[i + 1], RATE_DRILL[name], hide_small=d.filters.hide_small,
        ))
    chart.min_sample = min_sample()
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


def rubric_scores(d: Dashboard) -> Chart:
    """Mean rubric score per model version (the busiest versions first), one bar per numeric or yes/no field; the
    list links to that model version's conversations with scores of the field."""
    models = sorted({m for per_model in d.rubric_means.values() for m in per_model},
                    key=lambda m: (-sum(pm.get(m, (0, 0))[1] for pm in d.rubric_means.values()), m))[:12]
    f = d.filters
    chart = Chart(
        id="rubric-scores", title="Rubric scores by model version", unit="mean score", kind="bar",
        labels=[m or NONE_LABEL for m in models], label_heading="Model version",
        description="Mean of the reviewers' scores (yes = 1, no = 0) in review queues, by model version, for "
        "conversations started in the range.",
        link_base=reverse("conversations:list"),
        link_common={"started_from": f.date_from.isoformat(), "started_to": f.date_to.isoformat(), **_common(f)},
        link_x=[{"model_version": m} for m in models],
    )
    for i, ((key, name), per_model) in enumerate(sorted(d.rubric_means.items())):
        chart.series.append(Series(
            name, [round(per_model[m][0], 3) if m in per_model else None for m in models], PALETTE[i % len(PALETTE)],
            {"score": f"{key}>=0"},
        ))
    return chart


def compare_rates(d: Dashboard) -> Chart | None:
    """A and B side by side on the percentage rates; their negative feedback per 1k turns (another unit, ~20 times
    larger) is the next chart's, so neither squashes the other."""
    f = d.filters
    if not (f.model_a and f.model_b):
        return None
    chart = Chart(
        id="compare-rates", title=f"{f.model_a} (A) and {f.model_b} (B): rates in %", unit="%", kind="bar",
        labels=[RATE_SHORT[name] for name in PERCENT_RATES], label_heading="Rate",
        description="The percentage rates for both model versions over the whole range, with 95% intervals in the "
        "table. Click a bar for the conversations.",
        link_base=reverse("conversations:list"),
        link_common={"started_from": f.date_from.isoformat(), "started_to": f.date_to.isoformat(), **_common(f)},
        link_x=[RATE_DRILL[name] for name in PERCENT_RATES], min_sample=min_sample(),
    )
    for i, model in enumerate((f.model_a, f.model_b)):
        figures = d.by_model.get(model, Figures())
        per_rate = [rate_series("", [figures], name, PALETTE[i], {}) for name in PERCENT_RATES]
        chart.series.append(Series(
            f"{'AB'[i]}: {model}", [s.data[0] for s in per_rate], PALETTE[i], {"model_version": model},
            n=[s.n[0] for s in per_rate], low=[s.low[0] for s in per_rate], high=[s.high[0] for s in per_rate],
        ))
    return chart


def compare_over_time(d: Dashboard) -> Chart | None:
    f = d.filters
    if not (f.model_a and f.model_b):
        return None
    chart, keys = _time_chart(
        d, id="compare-negative", title="Negative feedback per 1,000 turns: A and B over time", unit="per 1k turns",
        kind="line",
        description="The band around a line is its 95% interval. Click a point for that model version's "
        "conversations with negative feedback in the period.",
    )
    empty = Figures()
    for i, model in enumerate((f.model_a, f.model_b)):
        per_bucket = d.by_model_bucket.get(model, {})
        chart.series.append(rate_series(
            f"{'AB'[i]}: {model}", [per_bucket.get(key, empty) for key in keys], "negative_per_1k_turns",
            PALETTE[i], {"negative": "on", "model_version": model}, hide_small=f.hide_small,
        ))
    chart.min_sample = min_sample()
    return chart


def interval_note(figures: Figures, name: str) -> str:
    """A rate's 95% interval and sample size as text ("95% CI 3.5–29.0, n = 24 · small sample"); "" without data."""
    bounds = figures.interval(name)
    if bounds is None:
        return ""
    trials = figures.sample(name)
    note = f"95% CI {_number(_round(bounds[0]))}–{_number(_round(bounds[1]))}, n = {trials}"
    return note + (" · small sample" if trials < min_sample() else "")


@dataclass(frozen=True)
class CompareRow:
    label: str
    a: float | int | None
    b: float | int | None
    unit: str
    a_note: str = ""
    b_note: str = ""

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
    rows += [
        CompareRow(label, _round(a.rate(name)), _round(b.rate(name)), unit, interval_note(a, name),
                   interval_note(b, name))
        for name, (label, unit) in RATES.items()
    ]
    return rows


def all_charts(d: Dashboard) -> list[Chart]:
    charts = [feedback_by_kind(d), negative_by_split(d), rates_over_time(d)]
    charts += [c for c in (compare_rates(d), compare_over_time(d)) if c is not None]
    charts += [categories(d), reviewer_tags(d), rubric_scores(d)]
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
