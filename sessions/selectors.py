"""Reads for browsing conversation logs: the filtered, keyset-paginated session list and one session's trail.

Every function here runs a fixed number of SQL queries whatever the data size (the list: one; the filter
choices: one; the trail: three), and none counts rows over the whole table.
"""

# The list and choices SQL is assembled from constants of this module (column names, CTE names, numbers);
# every value that comes from a request is passed as a query parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import F
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from sessions.models import SEARCH_CONFIG, Conversation, ConversationTag, ConversationTagging, FeedbackEvent, Turn

PAGE_SIZE = 50
#: At most this many values per filter drop-down; a value beyond it can still be filtered on through the URL.
MAX_CHOICES = 500
#: How many rows of the index order the list walks before it stops walking and asks the selective indexes
#: (full text, feedback kinds) for every match instead. See ``conversation_list``.
WINDOW = 5000
#: Columns the list page shows; the large ones (metadata, search_vector) stay in the database.
LIST_COLUMNS = (
    "id", "title", "source", "external_id", "environment", "model_version", "user_role", "app_version",
    "started_at", "turn_count", "feedback_kinds", "has_negative_feedback",
)
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


# --- Filters -------------------------------------------------------------------------------------------------------


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
    #: Product-team session tag (``ConversationTag.slug``) and end-user feedback category.
    session_tag: str = ""
    feedback_category: str = ""

    @property
    def active(self) -> bool:
        return self != ConversationFilters()


# One SQL condition with its parameters; ``c`` is the conversation table's alias everywhere.
_Cond = tuple[str, list[Any]]
# Equality filters served by a (column, -started_at, -id) index, in the order we prefer to walk them.
_INDEXED_EQUALITY = ("model_version", "app_version", "user_role", "source", "environment")


def _split_conditions(filters: ConversationFilters) -> tuple[list[_Cond], list[_Cond]]:
    """Split the filters into *index* conditions, all served by one b-tree index in list order (at most one
    equality or the negative-feedback partial index, plus the date range), and *residual* ones checked row by row
    or through their own (GIN) index."""
    index: list[_Cond] = []
    residual: list[_Cond] = []
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
    if filters.q:
        residual.append(("c.search_vector @@ websearch_to_tsquery(%s::regconfig, %s)", [SEARCH_CONFIG, filters.q]))
    if filters.session_tag or filters.feedback_category:
        residual.extend(_insight_conditions(filters))
    return index, residual


def _insight_conditions(filters: ConversationFilters) -> list[_Cond]:
    """Session tag and feedback category: EXISTS probes served by the (conversation, ...) indexes."""
    conds: list[_Cond] = []
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
    index, residual = _split_conditions(filters)
    where, params = _where([*index, *residual])
    table = connection.ops.quote_name(Conversation._meta.db_table)
    return f"SELECT c.id FROM {table} c WHERE {where}", params


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
    conds: tuple[_Cond, ...]


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


def _where(conds: list[_Cond] | tuple[_Cond, ...]) -> tuple[str, list[Any]]:
    params: list[Any] = []
    for _, p in conds:
        params.extend(p)
    return " AND ".join(sql for sql, _ in conds) or "TRUE", params


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
    index_conds, residual = _split_conditions(filters)
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
        walk_where, walk_params = _where([*index_conds, *segment.conds])
        if not residual:
            name = f"p{len(parts)}"
            ctes.append(
                f"{name} AS (SELECT {columns} FROM {table} c WHERE {walk_where} AND {gate()} "
                f"ORDER BY {order('c.')} LIMIT {probe})"
            )
            params.extend(walk_params)
            parts.append(name)
            continue

        residual_where, residual_params = _where(residual)
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
    """One row of the session list: the columns in ``LIST_COLUMNS``, ``pk`` and ``part``, plus display values
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


def _rows(cursor: Any) -> list[ConversationRow]:
    """The fetched rows as ``ConversationRow``; no model instances, and no template tag, filter or ``{% url %}``
    per cell later: that per-cell work was most of a list page's time."""
    names = [column.name for column in cursor.description]
    head, _, tail = reverse("conversations:detail", args=[0]).rpartition("0")
    rows = []
    for values in cursor.fetchall():
        row = ConversationRow(zip(names, values, strict=True))
        row["pk"] = pk = row["id"]
        row["href"] = f"{head}{pk}{tail}"
        row["display_title"] = row["title"] or row["external_id"]
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
        rows = sorted(_rows(cursor), key=order_key)[:probe]
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


# --- Filter choices ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterChoices:
    model_versions: list[str] = field(default_factory=list)
    user_roles: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


# A loose index scan per column: each step jumps to the next distinct value through the column's
# (value, -started_at, -id) index, so the cost grows with the number of distinct values, not of rows.
_DISTINCT_STEP = """
{name} AS (
    (SELECT {col} AS v FROM {table} WHERE {col} > '' ORDER BY {col} LIMIT 1)
    UNION ALL
    SELECT (SELECT c.{col} FROM {table} c WHERE c.{col} > {name}.v ORDER BY c.{col} LIMIT 1)
    FROM {name} WHERE {name}.v IS NOT NULL
)"""
_CHOICE_COLUMNS = {"model_versions": "model_version", "user_roles": "user_role", "sources": "source"}


def _choices_sql() -> str:
    table = connection.ops.quote_name(Conversation._meta.db_table)
    ctes = ",".join(
        _DISTINCT_STEP.format(name=name, col=connection.ops.quote_name(col), table=table)
        for name, col in _CHOICE_COLUMNS.items()
    )
    selects = " UNION ALL ".join(
        f"(SELECT '{name}', v FROM {name} WHERE v IS NOT NULL LIMIT {MAX_CHOICES})" for name in _CHOICE_COLUMNS
    )
    return f"WITH RECURSIVE {ctes} {selects}"


def conversation_filter_choices() -> FilterChoices:
    """The distinct model versions, user roles and sources present, each sorted; one query."""
    found: dict[str, list[str]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(_choices_sql())
        for name, value in cursor.fetchall():
            found[name].append(value)
    return FilterChoices(**{name: found[name] for name in _CHOICE_COLUMNS})


# --- The trail -----------------------------------------------------------------------------------------------------


def pretty(value: Any) -> str:
    """Text for showing a JSON value: strings as they are (JSON inside a string pretty-printed), the rest as
    indented JSON. The result is plain text; templates escape it."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
            except ValueError:
                return value
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class DocumentView:
    id: str
    title: str
    score: float | None
    text: str
    #: Other keys of the stored document, pretty-printed.
    extra: str


@dataclass(frozen=True)
class ToolCallView:
    name: str
    id: str
    arguments: str
    result: str
    has_result: bool
    extra: str


_DOC_KEYS = ("id", "title", "score", "text")
_TOOL_KEYS = ("id", "name", "arguments", "result")


def _documents(raw: Any) -> list[DocumentView]:
    if not isinstance(raw, list):
        return []
    docs = []
    for doc in raw:
        if not isinstance(doc, dict):
            doc = {"text": doc}
        score = doc.get("score")
        rest = {k: v for k, v in doc.items() if k not in _DOC_KEYS}
        docs.append(
            DocumentView(
                id="" if doc.get("id") is None else str(doc["id"]),
                title="" if doc.get("title") is None else str(doc["title"]),
                score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
                text=pretty(doc.get("text", "")),
                extra=pretty(rest) if rest else "",
            )
        )
    return docs


def _tool_calls(raw: Any) -> list[ToolCallView]:
    if not isinstance(raw, list):
        return []
    calls = []
    for call in raw:
        if not isinstance(call, dict):
            call = {"name": str(call)}
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = call.get("arguments", function.get("arguments"))
        rest = {k: v for k, v in call.items() if k not in (*_TOOL_KEYS, "function")}
        calls.append(
            ToolCallView(
                name=str(call.get("name") or function.get("name") or "(unnamed tool)"),
                id="" if call.get("id") is None else str(call["id"]),
                arguments="" if arguments is None else pretty(arguments),
                result="" if call.get("result") is None else pretty(call["result"]),
                has_result="result" in call,
                extra=pretty(rest) if rest else "",
            )
        )
    return calls


@dataclass
class Trail:
    conversation: Conversation
    turns: list[Turn]
    feedback_count: int = 0

    @property
    def metadata_items(self) -> list[tuple[str, str, bool]]:
        """(key, text, is_structured) for each top-level metadata key, sorted by key."""
        metadata = self.conversation.metadata
        if not isinstance(metadata, dict):
            return [("(value)", pretty(metadata), True)] if metadata else []
        return [(str(k), pretty(v), not isinstance(v, str)) for k, v in sorted(metadata.items(), key=lambda i: i[0])]


def conversation_trail(*, pk: int) -> Trail:
    """A conversation with its turns in order; three queries. Each turn gets ``feedback`` (its events, oldest
    first), ``documents`` and ``tools`` (its system context, ready to show).

    Raises Http404 when there is no such conversation.
    """
    conversation = Conversation.objects.select_related("last_import").defer("search_vector").filter(pk=pk).first()
    if conversation is None:
        raise Http404("No such session.")
    turns = list(Turn.objects.filter(conversation_id=pk).order_by("position"))
    by_turn: dict[int, list[FeedbackEvent]] = defaultdict(list)
    events = FeedbackEvent.objects.filter(conversation_id=pk).order_by(F("created_at").asc(nulls_last=True), "id")
    count = 0
    for event in events:
        event.metadata_text = pretty(event.metadata) if event.metadata else ""  # type: ignore[attr-defined]
        by_turn[event.turn_id].append(event)
        count += 1
    for turn in turns:
        turn.feedback = by_turn.get(turn.pk, [])  # type: ignore[attr-defined]
        turn.documents = _documents(turn.retrieved_documents)  # type: ignore[attr-defined]
        turn.tools = _tool_calls(turn.tool_calls)  # type: ignore[attr-defined]
        turn.metadata_text = pretty(turn.metadata) if turn.metadata else ""  # type: ignore[attr-defined]
    return Trail(conversation=conversation, turns=turns, feedback_count=count)
