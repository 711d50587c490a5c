"""The conversation list's filters, as SQL conditions: shared by the list, bulk tagging and counting."""

# The SQL is assembled from constants of this module (column names, CTE names, numbers); every value that comes
# from a request is passed as a query parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection

from sessions.models import SEARCH_CONFIG, Conversation, ConversationTag, ConversationTagging, FeedbackEvent


@dataclass(frozen=True)
class ConversationFilters:
    """What the list is narrowed to. Empty strings and None mean "any". ``started_before`` is exclusive."""

    environment: str = ""
    model_version: str = ""
    user_role: str = ""
    source: str = ""
    app_version: str = ""
    started_from: dt.datetime | None = None
    started_before: dt.datetime | None = None
    feedback_kind: str = ""
    negative_only: bool = False
    q: str = ""
    #: Product-team conversation tag (``ConversationTag.slug``) and end-user feedback category.
    session_tag: str = ""
    feedback_category: str = ""
    #: "yes": reviewers have annotated or corrected it; "no": not yet.
    reviewed: str = ""
    #: Only conversations changed (a record, a turn, live feedback) at or after this time.
    live_since: dt.datetime | None = None
    #: Filters registered by apps above this one (``register_filter``): (name, value) pairs.
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def active(self) -> bool:
        return self != ConversationFilters()


# One SQL condition with its parameters; ``c`` is the conversation table's alias everywhere.
Condition = tuple[str, list[Any]]


@dataclass(frozen=True)
class ExtraFilter:
    """A filter of the conversation list that an app above this one contributes (review rubric scores): a text
    field ``name`` of the filter form whose value ``condition`` turns into an SQL condition on ``c``, or refuses
    with ValueError (its message is shown next to the field)."""

    name: str
    label: str
    placeholder: str
    condition: Callable[[str], Condition]


#: Registered from the contributing apps' ``AppConfig.ready()``; this app never imports them.
EXTRA_FILTERS: dict[str, ExtraFilter] = {}


def register_filter(extra: ExtraFilter) -> None:
    EXTRA_FILTERS[extra.name] = extra
# Equality filters served by a (column, -started_at, -id) index, in the order we prefer to walk them.
_INDEXED_EQUALITY = ("model_version", "app_version", "user_role", "source", "environment")


def split_conditions(filters: ConversationFilters) -> tuple[list[Condition], list[Condition]]:
    """Split the filters into *index* conditions, all served by one b-tree index in list order (at most one
    equality or the negative-feedback partial index, plus the date range), and *residual* ones checked row by row
    or through their own (GIN) index."""
    index: list[Condition] = []
    residual: list[Condition] = []
    driver_taken = False
    for column in _INDEXED_EQUALITY:
        value = getattr(filters, column)
        if value:
            target = residual if driver_taken else index
            target.append((f"c.{column} = %s", [value]))
            driver_taken = True
    if filters.negative_only:
        # Matches the predicate of the partial index conversation_negative_started.
        (residual if driver_taken else index).append(("c.has_negative_feedback", []))
    if filters.started_from is not None:
        index.append(("c.started_at >= %s", [filters.started_from]))
    if filters.started_before is not None:
        index.append(("c.started_at < %s", [filters.started_before]))
    if filters.feedback_kind:
        # ``@>`` on the denormalised array: served by the GIN index conversation_feedback_kinds.
        residual.append(("c.feedback_kinds @> %s::varchar(16)[]", [[filters.feedback_kind]]))
    if filters.reviewed:
        # Checked row by row on the walk; when reviewed rows are few, the partial index conversation_reviewed_started
        # serves the search for every match.
        residual.append((f"c.reviewed_at IS {'NOT ' if filters.reviewed == 'yes' else ''}NULL", []))
    if filters.live_since is not None:
        # Checked on the walk; when live rows are few, the index conversation_updated serves every match.
        residual.append(("c.updated_at >= %s", [filters.live_since]))
    if filters.q:
        residual.append(("c.search_vector @@ websearch_to_tsquery(%s::regconfig, %s)", [SEARCH_CONFIG, filters.q]))
    if filters.session_tag or filters.feedback_category:
        residual.extend(_tag_and_category_conditions(filters))
    for name, value in filters.extra:
        residual.append(EXTRA_FILTERS[name].condition(value))
    return index, residual


def _tag_and_category_conditions(filters: ConversationFilters) -> list[Condition]:
    """Conversation tag and feedback category: EXISTS probes served by the (conversation, ...) indexes."""
    conds: list[Condition] = []
    if filters.session_tag:
        tagging = connection.ops.quote_name(ConversationTagging._meta.db_table)
        tag = connection.ops.quote_name(ConversationTag._meta.db_table)
        conds.append((
            f"EXISTS (SELECT 1 FROM {tagging} st WHERE st.conversation_id = c.id "
            f"AND st.tag_id = (SELECT t.id FROM {tag} t WHERE t.slug = %s))",
            [filters.session_tag],
        ))
    if filters.feedback_category:
        feedback = connection.ops.quote_name(FeedbackEvent._meta.db_table)
        conds.append((
            f"EXISTS (SELECT 1 FROM {feedback} f WHERE f.conversation_id = c.id "
            f"AND f.categories @> %s::varchar(100)[])",
            [[filters.feedback_category]],
        ))
    return conds


def conversation_match_sql(filters: ConversationFilters) -> tuple[str, list[Any]]:
    """``SELECT c.id FROM <conversations> c WHERE <every filter>``: all matches of the list's filters, unordered,
    for set-based writes (bulk tagging) and counting on demand."""
    index, residual = split_conditions(filters)
    where, params = where_sql([*index, *residual])
    table = connection.ops.quote_name(Conversation._meta.db_table)
    return f"SELECT c.id FROM {table} c WHERE {where}", params


def where_sql(conds: list[Condition] | tuple[Condition, ...]) -> tuple[str, list[Any]]:
    params: list[Any] = []
    for _, p in conds:
        params.extend(p)
    return " AND ".join(sql for sql, _ in conds) or "TRUE", params
