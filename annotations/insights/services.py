"""Writes of the insights app: the daily rollup the dashboard reads, rebuilt with set-based SQL."""

# The SQL below is assembled from model table names and module constants; request values are query parameters.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone

from annotations.insights.models import (
    DailyCategoryRollup,
    DailyRollup,
    Grain,
    RollupState,
)
from sessions.models import Conversation, FeedbackEvent, ImportBatch, ImportStatus, Turn

logger = logging.getLogger(__name__)


def _q(name: str) -> str:
    return connection.ops.quote_name(name)

# --- The daily rollup ------------------------------------------------------------------------------------------------

# Any 64-bit constant: serialises rollup refreshes so two never delete and insert the same days at once.
_ROLLUP_LOCK = 0x1F5EED_7A6
_KINDS = ("thumbs_up", "thumbs_down", "rating", "category", "comment", "correction", "copy", "abandon",
          "regenerate", "rephrase")  # fmt: skip
_DIMS = ("model_version", "environment", "user_role", "app_version")


def _rollup_sql(day_filter: str, *, few: bool) -> tuple[str, str]:
    """INSERT statements for both rollup tables over the sessions that ``day_filter`` (a condition on ``c``)
    keeps. Every figure goes to the day the session started (UTC) and to the session's dimensions.

    ``few`` (a few days): each session's turns and events are counted through their (conversation, ...) indexes;
    otherwise (everything) in one grouped pass over each table, which is cheaper than a million index probes."""
    conv = _q(Conversation._meta.db_table)
    turn = _q(Turn._meta.db_table)
    feedback = _q(FeedbackEvent._meta.db_table)
    dims = ", ".join(f"c.{d}" for d in _DIMS)
    kind_sums = ", ".join(f"coalesce(sum(fb.{k}), 0)" for k in _KINDS)
    kind_counts = ", ".join(f"count(*) FILTER (WHERE f.kind = '{k}') AS {k}" for k in _KINDS)
    sessions = f"""
        WITH c AS MATERIALIZED (
            SELECT c.id, (c.started_at AT TIME ZONE 'UTC')::date AS day, {dims}, c.turn_count,
                   c.has_negative_feedback, 'abandon' = ANY(c.feedback_kinds) AS abandoned
            FROM {conv} c WHERE c.started_at IS NOT NULL AND ({day_filter})
        )"""
    if few:
        joins = f"""
        LEFT JOIN LATERAL (
            SELECT count(*) AS n FROM {turn} t WHERE t.conversation_id = c.id AND t.role = 'assistant'
        ) mt ON TRUE
        LEFT JOIN LATERAL (
            SELECT count(*) AS total, count(*) FILTER (WHERE f.is_negative) AS negative, {kind_counts}
            FROM {feedback} f WHERE f.conversation_id = c.id
        ) fb ON TRUE"""
    else:
        joins = f"""
        LEFT JOIN (
            SELECT t.conversation_id, count(*) AS n FROM {turn} t
            WHERE t.role = 'assistant' GROUP BY t.conversation_id
        ) mt ON mt.conversation_id = c.id
        LEFT JOIN (
            SELECT f.conversation_id, count(*) AS total, count(*) FILTER (WHERE f.is_negative) AS negative,
                   {kind_counts}
            FROM {feedback} f GROUP BY f.conversation_id
        ) fb ON fb.conversation_id = c.id"""
    main = f"""{sessions}
        INSERT INTO {_q(DailyRollup._meta.db_table)} (grain, day, {", ".join(_DIMS)}, sessions, turns, model_turns,
            feedback, negative, negative_sessions, {", ".join(_KINDS)}, abandoned_sessions)
        SELECT {int(Grain.ALL)}, c.day, {dims}, count(*), coalesce(sum(c.turn_count), 0), coalesce(sum(mt.n), 0),
               coalesce(sum(fb.total), 0), coalesce(sum(fb.negative), 0),
               count(*) FILTER (WHERE c.has_negative_feedback),
               {kind_sums}, count(*) FILTER (WHERE c.abandoned)
        FROM c
        {joins}
        GROUP BY c.day, {dims}"""
    categories = f"""{sessions}
        INSERT INTO {_q(DailyCategoryRollup._meta.db_table)} (grain, day, {", ".join(_DIMS)}, category, events)
        SELECT {int(Grain.ALL)}, c.day, {dims}, cat, count(*)
        FROM c JOIN {feedback} f ON f.conversation_id = c.id CROSS JOIN LATERAL unnest(f.categories) AS cat
        WHERE cat <> ''
        GROUP BY c.day, {dims}, cat"""
    return main, categories


def _coarser_grains_sql(day_filter: str) -> str:
    """INSERT the seven coarser grains of the days ``day_filter`` (a condition on ``r.day``) from their full-grain
    rows: one GROUPING SETS pass; the grain is the set of dimensions kept (``Grain``: environment 4, role 2, app 1)."""
    table = _q(DailyRollup._meta.db_table)
    sums = ("sessions", "turns", "model_turns", "feedback", "negative", "negative_sessions", *_KINDS,
            "abandoned_sessions")  # fmt: skip
    sets = ", ".join(
        "(" + ", ".join(["r.day", "r.model_version", *dims]) + ")"
        for dims in ([], ["r.app_version"], ["r.user_role"], ["r.user_role", "r.app_version"], ["r.environment"],
                     ["r.environment", "r.app_version"], ["r.environment", "r.user_role"])
    )
    return f"""
        INSERT INTO {table} (grain, day, model_version, environment, user_role, app_version, {", ".join(sums)})
        SELECT {int(Grain.ALL)} - GROUPING(r.environment, r.user_role, r.app_version), r.day, r.model_version,
               coalesce(r.environment, ''), coalesce(r.user_role, ''), coalesce(r.app_version, ''),
               {", ".join(f"sum(r.{name})" for name in sums)}
        FROM {table} r
        WHERE r.grain = {int(Grain.ALL)} AND ({day_filter})
        GROUP BY GROUPING SETS ({sets})"""


def _coarser_category_grains_sql(day_filter: str) -> str:
    """INSERT the seven coarser grains of the category rollup (without the model version) from the full one."""
    table = _q(DailyCategoryRollup._meta.db_table)
    # Grain 7 needs no derived rows: the full rows carry every filter dimension (queries sum over model versions).
    sets = ", ".join(
        "(" + ", ".join(["r.day", "r.category", *dims]) + ")"
        for dims in ([], ["r.app_version"], ["r.user_role"], ["r.user_role", "r.app_version"], ["r.environment"],
                     ["r.environment", "r.app_version"], ["r.environment", "r.user_role"])
    )
    return f"""
        INSERT INTO {table} (grain, day, model_version, environment, user_role, app_version, category, events)
        SELECT {int(Grain.ALL)} - GROUPING(r.environment, r.user_role, r.app_version), r.day, '',
               coalesce(r.environment, ''), coalesce(r.user_role, ''), coalesce(r.app_version, ''), r.category,
               sum(r.events)
        FROM {table} r
        WHERE r.grain = {int(Grain.ALL)} AND ({day_filter})
        GROUP BY GROUPING SETS ({sets})"""


def _state() -> RollupState:
    state, _ = RollupState.objects.select_for_update().get_or_create(pk=1)
    return state


@transaction.atomic
def rollup_refresh_days(*, days: Iterable[dt.date]) -> int:
    """Recompute the rollup rows of ``days`` (UTC start days) from the sessions; returns the days refreshed.

    Idempotent: the days' rows are deleted and inserted again in one transaction, under a lock that keeps
    concurrent refreshes apart, so readers see either the old or the new figures, never a mix.
    """
    day_list = sorted(set(days))
    if not day_list:
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ROLLUP_LOCK])
        for model in (DailyRollup, DailyCategoryRollup):
            cursor.execute(f"DELETE FROM {_q(model._meta.db_table)} WHERE day = ANY(%s)", [day_list])
        # The range bounds let the started_at index find the sessions; the day test keeps only the days asked for.
        day_filter = (
            "c.started_at >= %(low)s AND c.started_at < %(high)s "
            "AND (c.started_at AT TIME ZONE 'UTC')::date = ANY(%(days)s::date[])"
        )
        low = dt.datetime.combine(day_list[0], dt.time.min, tzinfo=dt.UTC)
        high = dt.datetime.combine(day_list[-1] + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        for sql in _rollup_sql(day_filter, few=True):
            cursor.execute(sql, {"days": day_list, "low": low, "high": high})
        for sql in (_coarser_grains_sql, _coarser_category_grains_sql):
            cursor.execute(sql("r.day = ANY(%(days)s::date[])"), {"days": day_list})
    state = _state()
    state.refreshed_at = timezone.now()
    state.save(update_fields=["refreshed_at"])
    return len(day_list)


@transaction.atomic
def rollup_rebuild() -> None:
    """Recompute the whole rollup from the sessions (the nightly safety net, and after manual data changes)."""
    started = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ROLLUP_LOCK])
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {_q(ImportBatch._meta.db_table)}")
        last_batch = cursor.fetchone()[0]
        for model in (DailyRollup, DailyCategoryRollup):
            cursor.execute(f"DELETE FROM {_q(model._meta.db_table)}")
        for sql in _rollup_sql("TRUE", few=False):
            cursor.execute(sql, {})
        for sql in (_coarser_grains_sql, _coarser_category_grains_sql):
            cursor.execute(sql("TRUE"), {})
    state = _state()
    state.refreshed_at = state.full_rebuild_at = started
    # Imports that finish later are picked up by the next refresh.
    state.last_batch_id = max(state.last_batch_id, last_batch)
    state.save()


def _batch_days(batch_ids: list[int]) -> list[dt.date]:
    conv = _q(Conversation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT (started_at AT TIME ZONE 'UTC')::date FROM {conv} "
            "WHERE last_import_id = ANY(%s) AND started_at IS NOT NULL",
            [batch_ids],
        )
        return [row[0] for row in cursor.fetchall()]


def rollup_refresh_batch(*, batch_id: int) -> int:
    """Recompute the days of the sessions an import batch wrote; returns how many days."""
    return rollup_refresh_days(days=_batch_days([batch_id]))


FINISHED = (ImportStatus.DONE, ImportStatus.DONE_WITH_REJECTIONS, ImportStatus.FAILED)


@transaction.atomic
def rollup_refresh_pending() -> int:
    """Catch up with every import finished since the last catch-up (the beat safety net behind the per-import
    task). Stops at the oldest import still running, so none is skipped. Returns the days refreshed."""
    state = _state()
    batches = list(
        ImportBatch.objects.filter(pk__gt=state.last_batch_id).order_by("pk").values_list("pk", "status")
    )
    done: list[int] = []
    for pk, status in batches:
        if status not in FINISHED:
            break
        done.append(pk)
    if not done:
        return 0
    refreshed = rollup_refresh_days(days=_batch_days(done))
    state.last_batch_id = done[-1]
    state.save(update_fields=["last_batch_id"])
    return refreshed
