"""Honest insights: every rate with its sample size and 95% Wilson interval, small samples flagged (or hidden),
percentages and per-1k rates never on one axis, many model versions as the busiest few and "Others"."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from annotations.insights import services
from annotations.insights.stats import wilson
from tests.annotations.insights.conftest import DAY1
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db
DASH = reverse("insights:dashboard")
RANGE = {"date_from": "2026-03-02", "date_to": "2026-03-04"}


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        # Worked by hand from the Wilson score formula with z = 1.96 (and checked against published tables).
        (1, 2, (0.0945, 0.9055)),
        (0, 10, (0.0, 0.2775)),
        (8, 10, (0.4902, 0.9433)),
        (50, 100, (0.4038, 0.5962)),
        (3, 3, (0.4385, 1.0)),
    ],
)
def test_wilson_interval_against_hand_worked_values(successes, n, expected):
    low, high = wilson(successes, n)
    assert (round(low, 4), round(high, 4)) == expected


def test_wilson_without_trials_is_no_interval_and_events_beyond_the_trials_are_capped():
    assert wilson(0, 0) is None
    assert wilson(5, 2) == wilson(2, 2)


def _charts(response) -> dict:
    body = response.content.decode()
    raw = re.search(r'<script id="insights-charts" type="application/json">(.*?)</script>', body, re.S).group(1)
    return {c["id"]: c for c in json.loads(raw)}


@pytest.fixture
def one_small_conversation(db):
    """One 2-turn conversation with a thumbs down: 500 negative per 1k turns, from n = 2."""
    make_conversation(started_at=DAY1, model_version="m-a", environment="prod",
                      turns=[("user", "Hi?"), ("assistant", "Hello.")], feedback={1: [{"kind": "thumbs_down"}]})
    services.rollup_rebuild()


def test_a_rate_from_two_turns_shows_its_interval_and_the_small_sample_flag(client, analyst, one_small_conversation):
    client.force_login(analyst)
    response = client.get(DASH, RANGE)
    series = _charts(response)["negative-by-split"]["series"][0]
    i = series["data"].index(500.0)
    assert series["n"][i] == 2
    assert (series["low"][i], series["high"][i]) == (94.53, 905.47)  # wilson(1, 2) per 1,000
    body = response.content.decode()
    assert "500.0 (95% CI 94.53–905.47, n = 2) · small sample" in body  # the chart's table
    assert "95% CI 94.53–905.47, n = 2 · small sample" in body  # the rate card
    assert "is-small-sample" in body


def test_small_samples_can_be_left_out_of_the_charts(client, analyst, one_small_conversation):
    client.force_login(analyst)
    response = client.get(DASH, {**RANGE, "small": "hide"})
    charts = _charts(response)
    # Every rate point came from one conversation: nothing is left to draw; the counts chart stays.
    assert "negative-by-split" not in charts and "rates" not in charts and "feedback-by-kind" in charts
    assert "from fewer than 30 trials they are left out of the charts" in response.content.decode()


def test_rates_and_per_1k_values_never_share_an_axis(client, analyst, varied_sessions):
    services.rollup_rebuild()
    client.force_login(analyst)
    charts = _charts(client.get(DASH, {**RANGE, "model_a": "m-a", "model_b": "m-b"}))
    # Each chart has one unit, so one value axis; the A/B percentages have their own chart.
    assert charts["compare-rates"]["unit"] == "%"
    assert charts["compare-rates"]["labels"] == ["Abandonment %", "Regenerate %", "Copy %"]
    assert charts["compare-negative"]["unit"] == "per 1k turns"
    assert charts["rates"]["unit"] == "%" and charts["negative-by-split"]["unit"] == "per 1k turns"
    for chart in charts.values():
        if chart["unit"] == "%":
            assert all(v is None or v <= 100 for s in chart["series"] for v in s["data"]), chart["id"]


def test_many_model_versions_become_the_busiest_five_and_others(client, analyst):
    for i in range(8):
        for _ in range(8 - i):  # m-0 busiest ... m-7 quietest
            make_conversation(started_at=DAY1, model_version=f"m-{i}", feedback={1: [{"kind": "thumbs_down"}]})
    services.rollup_rebuild()
    client.force_login(analyst)
    series = _charts(client.get(DASH, RANGE))["negative-by-split"]["series"]
    assert [s["label"] for s in series] == ["m-0", "m-1", "m-2", "m-3", "m-4", "Others (3 model versions)"]
    others = series[-1]
    i = next(j for j, v in enumerate(others["data"]) if v is not None)
    assert others["n"][i] == 2 * (3 + 2 + 1)  # the three quietest versions' turns, summed
