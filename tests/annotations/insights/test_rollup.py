"""The daily rollup against direct aggregation over the sessions, and its refresh paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.db.models import Count, Sum

from annotations.insights import selectors, services
from annotations.insights.models import DailyCategoryRollup, DailyRollup, Grain, RollupState
from sessions.models import Conversation, FeedbackEvent, ImportBatch, ImportStatus, Turn
from sessions.services import import_file
from tests.annotations.insights.conftest import DAY1
from tests.factories import add_feedback, refresh_summary

pytestmark = pytest.mark.django_db

KINDS = selectors.KINDS


def _direct(day: dt.date | None = None, **dims) -> dict[str, int]:
    """The rollup's figures computed straight from the session tables."""
    convs = Conversation.objects.filter(started_at__isnull=False, **dims)
    if day is not None:
        convs = convs.filter(started_at__date=day)
    events = FeedbackEvent.objects.filter(conversation__in=convs)
    out = {
        "sessions": convs.count(),
        "turns": convs.aggregate(n=Sum("turn_count"))["n"] or 0,
        "model_turns": Turn.objects.filter(conversation__in=convs, role="assistant").count(),
        "feedback": events.count(),
        "negative": events.filter(is_negative=True).count(),
        "negative_sessions": convs.filter(has_negative_feedback=True).count(),
        "abandoned_sessions": convs.filter(feedback_kinds__contains=["abandon"]).count(),
    }
    by_kind = dict(events.values_list("kind").annotate(n=Count("id")))
    out.update({kind: by_kind.get(kind, 0) for kind in KINDS})
    return out


def _rolled(day: dt.date | None = None, grain: int = Grain.ALL, **dims) -> dict[str, int]:
    rows = DailyRollup.objects.filter(grain=grain, **dims)
    if day is not None:
        rows = rows.filter(day=day)
    sums = rows.aggregate(**{name: Sum(name) for name in selectors.SUMS})
    return {name: sums[name] or 0 for name in selectors.SUMS}


def test_rebuild_matches_direct_aggregation_per_day_and_dimension(varied_sessions):
    services.rollup_rebuild()
    assert _rolled() == _direct()
    for offset in range(3):
        day = (DAY1 + dt.timedelta(days=offset)).date()
        assert _rolled(day) == _direct(day)
    for dims in ({"model_version": "m-a"}, {"environment": "dev"}, {"user_role": "customer", "app_version": "2.0"}):
        assert _rolled(**dims) == _direct(**dims)
    # The session without a start time is not counted; the others are, each on its own start day.
    assert _rolled()["sessions"] == 6
    assert DailyRollup.objects.values("day").distinct().count() == 3
    # Every coarser grain holds the same figures, and keeps exactly its own dimensions.
    day1 = (DAY1 + dt.timedelta(days=1)).date()
    for grain in Grain:
        assert _rolled(grain=grain) == _direct()
        assert _rolled(day1, grain=grain) == _direct(day1)
        rows = DailyRollup.objects.filter(grain=grain)
        assert rows.exclude(environment="").exists() == bool(grain & 4)
        assert rows.exclude(user_role="").exists() == bool(grain & 2)
        assert rows.exclude(app_version="").exists() == bool(grain & 1)
    assert _rolled(grain=Grain.ENV, environment="dev") == _direct(environment="dev")
    assert _rolled(grain=Grain.ROLE_APP, user_role="customer", app_version="2.0") == _direct(
        user_role="customer", app_version="2.0")
    state = RollupState.objects.get(pk=1)
    assert state.refreshed_at is not None and state.full_rebuild_at is not None


def test_categories_count_each_category_of_an_event(varied_sessions):
    services.rollup_rebuild()
    for grain in Grain:
        rows = DailyCategoryRollup.objects.filter(grain=grain)
        totals = dict(rows.values_list("category").annotate(n=Sum("events")))
        assert totals == {"too vague": 2, "wrong": 1}
    prod = DailyCategoryRollup.objects.filter(grain=Grain.ENV, environment="prod")
    assert dict(prod.values_list("category").annotate(n=Sum("events"))) == {"too vague": 2, "wrong": 1}
    assert not DailyCategoryRollup.objects.filter(grain=Grain.ENV, environment="dev").exists()


def test_refresh_days_follows_new_feedback_and_leaves_other_days_alone(varied_sessions):
    services.rollup_rebuild()
    day0 = DAY1.date()
    other_before = list(DailyRollup.objects.exclude(day=day0).order_by("id").values())
    conv = varied_sessions[1]
    add_feedback(conv.turns.get(position=3), kind="thumbs_down")
    refresh_summary(conv)
    assert _rolled(day0) != _direct(day0)
    assert services.rollup_refresh_days(days=[day0]) == 1
    assert _rolled(day0) == _direct(day0)
    assert _rolled(day0, grain=Grain.MODEL) == _rolled(day0, grain=Grain.ENV_ROLE) == _direct(day0)
    assert list(DailyRollup.objects.exclude(day=day0).order_by("id").values()) == other_before
    # Refreshing again changes nothing (no duplicates).
    services.rollup_refresh_days(days=[day0])
    assert _rolled(day0) == _direct(day0)


def test_refresh_pending_catches_up_with_finished_imports_only(varied_sessions):
    done = ImportBatch.objects.create(file_name="a.jsonl", source="t", status=ImportStatus.DONE)
    running = ImportBatch.objects.create(file_name="b.jsonl", source="t", status=ImportStatus.RUNNING)
    later = ImportBatch.objects.create(file_name="c.jsonl", source="t", status=ImportStatus.DONE)
    Conversation.objects.filter(pk=varied_sessions[0].pk).update(last_import=done)
    Conversation.objects.filter(pk=varied_sessions[5].pk).update(last_import=later)
    assert services.rollup_refresh_pending() == 1  # the day of the done batch; stops at the running one
    assert RollupState.objects.get(pk=1).last_batch_id == done.pk
    assert set(DailyRollup.objects.values_list("day", flat=True)) == {DAY1.date()}
    running.status = ImportStatus.FAILED
    running.save()
    services.rollup_refresh_pending()
    assert RollupState.objects.get(pk=1).last_batch_id == later.pk
    assert set(DailyRollup.objects.values_list("day", flat=True)) == {DAY1.date(), (DAY1 + dt.timedelta(days=2)).date()}


def test_an_import_enqueues_the_rollup_refresh_after_commit(django_capture_on_commit_callbacks):


    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "native.jsonl"
    with django_capture_on_commit_callbacks() as callbacks:
        batch = import_file(path=example, source="t")
    assert batch.conversations_created >= 1, batch.error
    assert sum("insights.rollup_refresh_batch" in repr(cb) for cb in callbacks) == 1
    assert services.rollup_refresh_batch(batch_id=batch.pk) >= 1
    assert _rolled() == _direct()
    assert _rolled()["sessions"] == Conversation.objects.filter(started_at__isnull=False).count() > 0
    # Importing the same file again changes nothing, so nothing is enqueued.
    with django_capture_on_commit_callbacks() as callbacks:
        again = import_file(path=example, source="t")
    assert again.conversations_created == again.conversations_updated == 0
    assert not any("insights.rollup_refresh_batch" in repr(cb) for cb in callbacks)


def test_dashboard_selector_matches_direct_figures(varied_sessions, django_assert_max_num_queries):
    services.rollup_rebuild()
    filters = selectors.DashboardFilters(date_from=DAY1.date(), date_to=(DAY1 + dt.timedelta(days=6)).date(),
                                         environment="prod", split="user_role")
    with django_assert_max_num_queries(4):  # rollup, categories, reviewer tags, rubric score means
        data = selectors.dashboard(filters)
    assert data.filters.unit == "day"
    assert data.totals.values == _direct(environment="prod")
    assert data.by_bucket[DAY1.date()].values == _direct(DAY1.date(), environment="prod")
    assert set(data.by_split) == {"customer", "employee"}
    assert sum(f.sessions for f in data.by_split["employee"].values()) == _direct(environment="prod",
                                                                                 user_role="employee")["sessions"]
    assert data.by_model["m-a"].values == _direct(environment="prod", model_version="m-a")
    assert data.categories == [("too vague", 2), ("wrong", 1)]
    expected = _direct(environment="prod")
    assert data.totals.negative_per_1k_turns == pytest.approx(1000 * expected["negative"] / expected["turns"])
    assert data.totals.copy_pct == pytest.approx(100 * expected["copy"] / expected["model_turns"])


def test_week_and_month_buckets_cover_the_range_exactly():
    f = selectors.DashboardFilters(date_from=dt.date(2026, 1, 7), date_to=dt.date(2026, 5, 1))
    assert f.unit == "week"
    buckets = selectors.buckets(f)
    assert buckets[0] == (dt.date(2026, 1, 7), dt.date(2026, 1, 11))
    assert buckets[-1][1] == dt.date(2026, 5, 1)
    assert all(b[0] == a[1] + dt.timedelta(days=1) for a, b in zip(buckets, buckets[1:], strict=False))
    m = selectors.DashboardFilters(date_from=dt.date(2024, 1, 15), date_to=dt.date(2026, 2, 3))
    assert m.unit == "month"
    assert selectors.buckets(m)[0] == (dt.date(2024, 1, 15), dt.date(2024, 1, 31))
    assert selectors.buckets(m)[-1] == (dt.date(2026, 2, 1), dt.date(2026, 2, 3))
