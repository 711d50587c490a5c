"""Writes of the insights app: session tags (one by one and in bulk over every match of a list filter), saved
views, and the daily rollup the dashboard reads.

Bulk tagging is set-based: ``INSERT ... SELECT <the list's own filter query> ON CONFLICT DO NOTHING`` (and a
``DELETE ... USING`` to remove), so a million matches are one statement and nothing passes through Python.
"""

# The SQL below is assembled from model table names and module constants; request values are query parameters.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.http import QueryDict
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from feedbackhub import roles
from sessions.insights.models import (
    DailyCategoryRollup,
    DailyRollup,
    Grain,
    RollupState,
    SavedView,
    SessionTag,
    SessionTagging,
)
from sessions.models import Conversation, FeedbackEvent, ImportBatch, ImportStatus, Turn
from sessions.selectors import ConversationFilters, conversation_match_sql

logger = logging.getLogger(__name__)

#: Query parameters of the session list that a saved view keeps (page positions are left out).
VIEW_PARAMS = (
    "q", "environment", "model_version", "user_role", "source", "app_version", "started_from", "started_to",
    "feedback", "negative", "category", "tag",
)  # fmt: skip
TAG_COLOURS = ("#4f6bed", "#0f9d8a", "#c2410c", "#9333ea", "#be185d", "#15803d", "#b45309", "#0369a1")


def can_tag(user: AbstractBaseUser) -> bool:
    """Tagging sessions (and managing session tags) is for product analysts and admins."""
    return roles.has_role(user, roles.PRODUCT_ANALYST, roles.ADMIN)


def _require_tagger(actor: AbstractBaseUser) -> None:
    if not can_tag(actor):
        raise PermissionDenied("Only product analysts and admins tag sessions.")


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


# --- Session tags ----------------------------------------------------------------------------------------------------


@transaction.atomic
def session_tag_get_or_create(*, actor: AbstractBaseUser, name: str) -> SessionTag:
    """The tag called ``name`` (case-insensitive), created when missing. Raises ValidationError on a bad name."""
    _require_tagger(actor)
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Give the tag a name."})
    if len(name) > 80:
        raise ValidationError({"name": "A tag name has at most 80 characters."})
    existing = SessionTag.objects.filter(name__iexact=name).first()
    if existing is not None:
        return existing
    base = slugify(name)[:70] or "tag"
    slug = base
    while SessionTag.objects.filter(slug=slug).exists():
        slug = f"{base}-{get_random_string(4, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
    colour = TAG_COLOURS[SessionTag.objects.count() % len(TAG_COLOURS)]
    return SessionTag.objects.create(name=name, slug=slug, colour=colour, created_by=actor)


@dataclass(frozen=True)
class BulkResult:
    tag: SessionTag
    #: Rows inserted (sessions that did not carry the tag yet) or deleted.
    changed: int
    removed: bool = False


@transaction.atomic
def session_tag_apply_matching(
    *, actor: AbstractBaseUser, tag: SessionTag, filters: ConversationFilters
) -> BulkResult:
    """Tag every session matching ``filters`` (every page, not only the one shown); sessions that already carry
    the tag are left alone. One statement whatever the number of matches."""
    _require_tagger(actor)
    match_sql, params = conversation_match_sql(filters)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_q(SessionTagging._meta.db_table)} (conversation_id, tag_id, tagged_by_id, tagged_at) "
            f"SELECT m.id, %s, %s, %s FROM ({match_sql}) m "
            "ON CONFLICT (conversation_id, tag_id) DO NOTHING",
            [tag.pk, actor.pk, timezone.now(), *params],
        )
        return BulkResult(tag=tag, changed=cursor.rowcount)


@transaction.atomic
def session_tag_remove_matching(
    *, actor: AbstractBaseUser, tag: SessionTag, filters: ConversationFilters
) -> BulkResult:
    """Remove ``tag`` from every session matching ``filters``."""
    _require_tagger(actor)
    match_sql, params = conversation_match_sql(filters)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {_q(SessionTagging._meta.db_table)} st USING ({match_sql}) m "
            "WHERE st.conversation_id = m.id AND st.tag_id = %s",
            [*params, tag.pk],
        )
        return BulkResult(tag=tag, changed=cursor.rowcount, removed=True)


@transaction.atomic
def session_tag_apply_ids(
    *, actor: AbstractBaseUser, tag: SessionTag, conversation_ids: Iterable[int], remove: bool = False
) -> BulkResult:
    """Tag (or untag) the selected sessions; ids of sessions that do not exist are ignored."""
    _require_tagger(actor)
    ids = sorted({int(pk) for pk in conversation_ids})
    table = _q(SessionTagging._meta.db_table)
    conv = _q(Conversation._meta.db_table)
    with connection.cursor() as cursor:
        if remove:
            cursor.execute(
                f"DELETE FROM {table} WHERE tag_id = %s AND conversation_id = ANY(%s)", [tag.pk, ids]
            )
        else:
            cursor.execute(
                f"INSERT INTO {table} (conversation_id, tag_id, tagged_by_id, tagged_at) "
                f"SELECT c.id, %s, %s, %s FROM {conv} c WHERE c.id = ANY(%s) "
                "ON CONFLICT (conversation_id, tag_id) DO NOTHING",
                [tag.pk, actor.pk, timezone.now(), ids],
            )
        return BulkResult(tag=tag, changed=cursor.rowcount, removed=remove)


# --- Saved views -----------------------------------------------------------------------------------------------------


def view_query_string(params: QueryDict | dict) -> str:
    """The list filter part of a query string, in a stable order, empty values and page positions dropped."""
    pairs = []
    for name in VIEW_PARAMS:
        values = params.getlist(name) if isinstance(params, QueryDict) else [params.get(name, "")]
        pairs.extend((name, value) for value in values if value not in (None, ""))
    return urlencode(pairs)


@transaction.atomic
def saved_view_create(*, actor: AbstractBaseUser, name: str, params: QueryDict | dict, shared: bool) -> SavedView:
    """Save the list filter in ``params`` as ``name``; the same owner and name replaces the earlier filter."""
    if not actor.is_authenticated:
        raise PermissionDenied("Log in to save views.")
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Give the view a name."})
    if len(name) > 120:
        raise ValidationError({"name": "A view name has at most 120 characters."})
    query = view_query_string(params)
    existing = SavedView.objects.select_for_update().filter(owner=actor, name=name).first()
    if existing is not None:
        existing.query_string = query
        existing.shared = shared
        existing.save(update_fields=["query_string", "shared", "updated_at"])
        return existing
    slug = f"{slugify(name)[:100] or 'view'}-{get_random_string(6, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
    return SavedView.objects.create(name=name, slug=slug, owner=actor, query_string=query, shared=shared)


@transaction.atomic
def saved_view_delete(*, actor: AbstractBaseUser, view: SavedView) -> None:
    """Delete a saved view: its owner or an admin."""
    if view.owner_id != actor.pk and not roles.has_role(actor, roles.ADMIN):
        raise PermissionDenied("Only the owner of a saved view deletes it.")
    view.delete()


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
