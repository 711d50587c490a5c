"""The conversation list: filtered, keyset-paginated, one SQL query whatever the data size (no count over the
whole table)."""

# The SQL is assembled from constants of this module (column names, CTE names, numbers); every value that comes
# from a request is passed as a query parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from sessions.models import Conversation
from sessions.selectors.filters import Condition, ConversationFilters, split_conditions, where_sql

PAGE_SIZE = 50
#: How many rows of the index order the list walks before it stops walking and asks the selective indexes
#: (full text, feedback kinds) for every match instead. See ``conversation_list``.
WINDOW = 5000
#: Columns the list page shows; the large ones (metadata, search_vector) stay in the database.
LIST_COLUMNS = (
    "id", "title", "source", "external_id", "environment", "model_version", "user_role", "app_version",
    "started_at", "turn_count", "feedback_kinds", "has_negative_feedback", "reviewed_at", "updated_at",
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(value: dt.datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# --- Keyset cursor -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in the list order ``started_at DESC NULLS FIRST, id DESC`` (the order of the
    ``conversation_started_id`` index). Encoded in URLs as ``<epoch microseconds>-<id>``, or ``n-<id>`` for a
    conversation without a start time."""

    started_at: dt.datetime | None
    id: int

    @classmethod
    def of(cls, conversation: Conversation | ConversationRow) -> Cursor:
        return cls(started_at=conversation.started_at, id=conversation.pk)

    def encode(self) -> str:
        return f"{'n' if self.started_at is None else _micros(self.started_at)}-{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        """Parse an encoded cursor; raises ValueError with a readable reason."""
        head, sep, tail = raw.strip().rpartition("-")
        if not sep or not head or not tail.isdigit() or len(tail) > 19:
            raise ValueError("expected <timestamp>-<id>")
        pk = int(tail)
        if head == "n":
            return cls(started_at=None, id=pk)
        if not head.lstrip("-").isdigit():
            raise ValueError("the timestamp part is not a number")
        try:
            started_at = _EPOCH + dt.timedelta(microseconds=int(head))
        except OverflowError as exc:
            raise ValueError("the timestamp part is out of range") from exc
        return cls(started_at=started_at, id=pk)


# --- The list ------------------------------------------------------------------------------------------------------


@dataclass
class ConversationPage:
    rows: list[ConversationRow]
    #: Cursor for the next (older) page, None on the last page.
    next_cursor: Cursor | None
    #: Cursor for the previous (newer) page, None on the first page.
    prev_cursor: Cursor | None
    page_size: int = PAGE_SIZE

    @property
    def is_first(self) -> bool:
        return self.prev_cursor is None


@dataclass(frozen=True)
class _Segment:
    """A stretch of the list order one index range serves: the undated rows, or the dated ones."""

    dated: bool
    conds: tuple[Condition, ...]


def _segments(after: Cursor | None, before: Cursor | None, has_date_range: bool) -> tuple[list[_Segment], bool]:
    """The segments to walk, in walking order, and whether the walk goes backwards (towards newer rows).

    Undated conversations come first in ``started_at DESC`` (NULLS FIRST, like the index), so a cursor on
    an undated row and one on a dated row continue in different segments.
    """
    undated = ("c.started_at IS NULL", [])
    dated = ("c.started_at IS NOT NULL", [])
    row_key = "ROW(c.started_at, c.id)"
    if before is not None:
        if before.started_at is None:
            segments = [_Segment(False, (undated, ("c.id > %s", [before.id])))]
        else:
            segments = [
                _Segment(True, ((f"{row_key} > ROW(%s, %s)", [before.started_at, before.id]),)),
                _Segment(False, (undated,)),
            ]
        backwards = True
    else:
        if after is None:
            segments = [_Segment(False, (undated,)), _Segment(True, (dated,))]
        elif after.started_at is None:
            segments = [_Segment(False, (undated, ("c.id < %s", [after.id]))), _Segment(True, (dated,))]
        else:
            segments = [_Segment(True, ((f"{row_key} < ROW(%s, %s)", [after.started_at, after.id]),))]
        backwards = False
    if has_date_range:
        segments = [segment for segment in segments if segment.dated]
    return segments, backwards


def _list_sql(
    filters: ConversationFilters, after: Cursor | None, before: Cursor | None, probe: int
) -> tuple[str, list[Any], bool]:
    """Build the one statement behind a list page. Returns (sql, params, backwards).

    The statement is a chain of *parts*, each a CTE giving at most ``probe`` rows of one segment in list order;
    each part after the first is gated by a one-time filter on the rows its predecessors found, so PostgreSQL
    never runs it once the page is full.

    With residual filters (text search, feedback kind, a second equality...) a segment has two parts, so that
    neither plan PostgreSQL could pick alone can run away on a million rows:

    * the *window*: walk the first ``WINDOW`` entries of the b-tree in list order (index-only) and check the
      residual filters on each, stopping as soon as the page is full — fast when matches are common;
    * the *remainder*, run only when the window was full but gave too few matches (so matches are rare): every
      match beyond the window, through the selective indexes, sorted — fast because matches are rare.
    """
    index_conds, residual = split_conditions(filters)
    has_date_range = filters.started_from is not None or filters.started_before is not None
    segments, backwards = _segments(after, before, has_date_range)
    direction = "ASC" if backwards else "DESC"

    def order(alias: str = "") -> str:
        return f"{alias}started_at {direction}, {alias}id {direction}"

    beyond = ">" if backwards else "<"
    table = connection.ops.quote_name(Conversation._meta.db_table)
    columns = ", ".join(f"c.{name}" for name in LIST_COLUMNS)
    bare_columns = ", ".join(LIST_COLUMNS)
    search_column = ", c.search_vector" if filters.q else ""

    ctes: list[str] = []
    params: list[Any] = []
    parts: list[str] = []

    def gate() -> str:
        """A condition true only while the parts so far found fewer than ``probe`` rows."""
        if not parts:
            return "TRUE"
        counts = " + ".join(f"(SELECT count(*) FROM {name})" for name in parts)
        return f"({counts}) < {probe}"

    for segment in segments:
        walk_where, walk_params = where_sql([*index_conds, *segment.conds])
        if not residual:
            name = f"p{len(parts)}"
            ctes.append(
                f"{name} AS (SELECT {columns} FROM {table} c WHERE {walk_where} AND {gate()} "
                f"ORDER BY {order('c.')} LIMIT {probe})"
            )
            params.extend(walk_params)
            parts.append(name)
            continue

        residual_where, residual_params = where_sql(residual)
        window_name = f"p{len(parts)}"
        # The inner walk reads rows in index order and stops after WINDOW of them; the outer query checks the
        # residual filters on them in the same order and stops as soon as the page is full.
        ctes.append(
            f"{window_name} AS (SELECT {bare_columns} FROM ("
            f"SELECT {columns}{search_column} FROM {table} c WHERE {walk_where} AND {gate()} "
            f"ORDER BY {order('c.')} LIMIT {WINDOW}"
            f") c WHERE {residual_where} ORDER BY {order('c.')} LIMIT {probe})"
        )
        params.extend([*walk_params, *residual_params])
        parts.append(window_name)

        # The last row of the window; NULL when the index range holds fewer than WINDOW rows (then the window
        # saw every candidate and there is no remainder).
        window_end_cols = "c.started_at, c.id" if segment.dated else "c.id"
        window_end = (
            f"(SELECT {window_end_cols} FROM {table} c WHERE {walk_where} "
            f"ORDER BY {order('c.')} OFFSET {WINDOW - 1} LIMIT 1)"
        )
        window_end_id = (
            f"(SELECT c.id FROM {table} c WHERE {walk_where} "
            f"ORDER BY {order('c.')} OFFSET {WINDOW - 1} LIMIT 1)"
        )
        all_name, rest_name = f"r{len(parts)}_all", f"p{len(parts)}"
        # Every match, through whatever index suits the filters best. The "beyond the window" bound stays out
        # of this query: compared with a value unknown at planning time, it would look selective and tempt the
        # planner into reading the whole (started_at, id) index as a bitmap.
        ctes.append(
            f"{all_name} AS MATERIALIZED (SELECT {columns} FROM {table} c WHERE {walk_where} AND {residual_where} "
            f"AND {gate()} AND {window_end_id} IS NOT NULL)"
        )
        params.extend([*walk_params, *residual_params, *walk_params])
        beyond_key = "ROW(c.started_at, c.id)" if segment.dated else "c.id"
        ctes.append(
            f"{rest_name} AS (SELECT {bare_columns} FROM {all_name} c WHERE {beyond_key} {beyond} {window_end} "
            f"ORDER BY {order('c.')} LIMIT {probe})"
        )
        params.extend(walk_params)
        parts.append(rest_name)

    if not parts:
        return f"SELECT {columns}, 0 AS part FROM {table} c WHERE FALSE", [], backwards
    union = " UNION ALL ".join(f"SELECT {bare_columns}, {i} AS part FROM {name}" for i, name in enumerate(parts))
    return f"WITH {', '.join(ctes)} {union}", params, backwards


class ConversationRow(dict):
    """One row of the conversation list: the columns in ``LIST_COLUMNS``, ``pk`` and ``part``, plus display values
    computed once per row by ``_rows``: ``href`` (the trail), ``display_title``, ``started_iso`` and
    ``started_text`` (``YYYY-MM-DD HH:MM`` in the current time zone).

    A dict, because a template looks a name up in a dict first and on an object only after that lookup fails, and
    a page of fifty rows makes about a thousand lookups. Python code may use attributes (``row.pk``); setting one
    stores a key, so a template sees it too.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _rows(cursor: Any, *, live_since: dt.datetime) -> list[ConversationRow]:
    """The fetched rows as ``ConversationRow``; no model instances, and no template tag, filter or ``{% url %}``
    per cell later: that per-cell work was most of a list page's time. ``live`` marks rows changed at or after
    ``live_since``."""
    names = [column.name for column in cursor.description]
    head, _, tail = reverse("conversations:detail", args=[0]).rpartition("0")
    rows = []
    for values in cursor.fetchall():
        row = ConversationRow(zip(names, values, strict=True))
        row["pk"] = pk = row["id"]
        row["href"] = f"{head}{pk}{tail}"
        row["display_title"] = row["title"] or row["external_id"]
        row["live"] = row["updated_at"] >= live_since
        started = row["started_at"]
        if started is None:
            row["started_iso"] = row["started_text"] = ""
        else:
            row["started_iso"] = started.isoformat()
            row["started_text"] = timezone.localtime(started).strftime("%Y-%m-%d %H:%M")
        rows.append(row)
    return rows


def conversation_list(
    *,
    filters: ConversationFilters,
    after: Cursor | None = None,
    before: Cursor | None = None,
    page_size: int = PAGE_SIZE,
) -> ConversationPage:
    """One page of conversations, newest first, after (older than) or before (newer than) a cursor.

    Runs exactly one query. ``page_size + 1`` rows tell whether there is a further page, so nothing is counted.
    Conversations without a start time sort first, as they do in the index.
    """
    if after is not None and before is not None:
        raise ValueError("give at most one of after and before")
    probe = page_size + 1
    sql, params, backwards = _list_sql(filters, after, before, probe)
    sign = 1 if backwards else -1

    def order_key(row: ConversationRow) -> tuple[int, int, int]:
        started = row["started_at"]
        micros = _micros(started) if started is not None else 0
        return row["part"], sign * micros, sign * row["id"]

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        live_since = timezone.now() - dt.timedelta(minutes=settings.LIVE_MINUTES)
        rows = sorted(_rows(cursor, live_since=live_since), key=order_key)[:probe]
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    if backwards:
        rows.reverse()
        return ConversationPage(
            rows=rows,
            next_cursor=Cursor.of(rows[-1]) if rows else None,
            prev_cursor=Cursor.of(rows[0]) if has_more else None,
            page_size=page_size,
        )
    return ConversationPage(
        rows=rows,
        next_cursor=Cursor.of(rows[-1]) if has_more else None,
        prev_cursor=Cursor.of(rows[0]) if after is not None and rows else None,
        page_size=page_size,
    )
