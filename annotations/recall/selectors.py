"""Reads of semantic recall: nearest feedback items to a vector, a text or another item.

Search runs on the HNSW index over half-precision copies of the active model's vectors (cosine distance), joined to
the items for the filters. It runs with ``hnsw.iterative_scan = relaxed_order`` (pgvector 0.8), set for every
database session when it opens (or for a search's own transaction when it asks for other settings):
when filters drop most candidates the index scan keeps going until ``k`` rows pass or ``hnsw.max_scan_tuples``
candidates were looked at, so a selective filter still returns ``k`` results. Relaxed order may return them slightly
out of order; they are sorted again here by exact distance.

The returned items come with their conversation, turn, source (annotation or feedback event), the turn's correction
(approved or not) and their tags, in a fixed number of queries for any ``k`` (pinned by a test).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotations.models import Annotation, Correction, Tag
from annotations.recall.models import DIMENSIONS, Embedding, EmbeddingModel, FeedbackItem, SourceKind
from feedbackhub import embeddings
from feedbackhub.vectors import vector_literal
from sessions.models import Turn, TurnRole

#: Candidates the HNSW scan keeps per step when the RECALL_EF_SEARCH setting is not set; more is slower and closer
#: to exact. Measured in bench/recall_bench.py (docs/recall.md).
EF_SEARCH = 100
#: Iterative scan mode: relaxed_order returns rows slightly out of order (re-sorted here), strict_order keeps the
#: order but stops earlier under a selective filter. Compared in bench/recall_bench.py.
ITERATIVE_SCAN = "relaxed_order"
#: Most candidates an iterative scan looks at before giving up on filling ``k`` (pgvector's default).
MAX_SCAN_TUPLES = 20_000
MAX_K = 100


@dataclass
class RecallFilters:
    """Filters of a recall search; empty values do not filter. ``tag_ids`` matches items with any of the tags;
    ``date_from``/``date_to`` bound when the feedback was given (inclusive days, in TIME_ZONE); ``source`` is a
    ``SourceKind`` value; ``resolved_only`` keeps items whose annotation is resolved or whose turn has an approved
    correction. ``conversation_sources`` (the apps an API token may see) and ``turn_ids`` (the replies of a
    released dataset version) filter when they are not None; an empty list matches nothing."""

    environment: str = ""
    model_version: str = ""
    user_role: str = ""
    tag_ids: list[int] = field(default_factory=list)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    source: str = ""
    resolved_only: bool = False
    conversation_sources: list[str] | None = None
    turn_ids: list[int] | None = None


@dataclass
class SimilarItem:
    item: FeedbackItem
    #: Cosine similarity, 0..1 (1 = same direction).
    similarity: float


def active_model_name() -> str:
    """The model searches use: the active EmbeddingModel row, else the EMBEDDING_MODEL setting."""
    name = EmbeddingModel.objects.filter(is_active=True).values_list("name", flat=True).first()
    return name or embeddings.model_name()


#: How long a process trusts its cached active model name (``active_model_name_cached``).
MODEL_CACHE_SECONDS = 60.0
_model_cache: tuple[float, str] | None = None
_cache_lock = threading.Lock()


def active_model_name_cached() -> str:
    """``active_model_name()`` remembered for ``MODEL_CACHE_SECONDS`` in this process, for the query hot path (the
    recall API). Never for writers: the embed task must follow a switch at once. A stale name cannot return another
    model's neighbours: ``recall_rows`` only matches when the name is still the active one (see there)."""
    global _model_cache
    cached = _model_cache
    now = time.monotonic()
    if cached is not None and now - cached[0] < MODEL_CACHE_SECONDS:
        return cached[1]
    name = active_model_name()
    with _cache_lock:
        _model_cache = (now, name)
    return name


def clear_caches() -> None:
    """Forget the cached active model name (after a switch in this process, and between tests)."""
    global _model_cache
    with _cache_lock:
        _model_cache = None


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_default_timezone())


def _where(filters: RecallFilters | None, exclude_item_ids: Sequence[int]) -> tuple[list[str], dict[str, Any]]:
    # No "e.text_hash = i.text_hash": the embed task keeps one vector per item and model (it deletes the older text's
    # vector when it stores the new one), and that two-column join condition makes the planner expect one row and
    # sort the whole join instead of walking the index. Between an edit and its embedding the old vector stands in.
    where = ["e.model = %(model)s", "i.is_active"]
    params: dict[str, Any] = {}
    f = filters or RecallFilters()
    for column in ("environment", "model_version", "user_role"):
        value = getattr(f, column)
        if value:
            where.append(f"i.{column} = %({column})s")
            params[column] = value
    if f.source:
        if f.source not in SourceKind.values:
            raise ValueError(f"unknown source {f.source!r}; one of {', '.join(SourceKind.values)}")
        where.append("i.source = %(source)s")
        params["source"] = f.source
    if f.tag_ids:
        where.append("i.tag_ids && %(tag_ids)s::bigint[]")
        params["tag_ids"] = [int(t) for t in f.tag_ids]
    if f.date_from:
        where.append("i.occurred_at >= %(date_from)s")
        params["date_from"] = _day_start(f.date_from)
    if f.date_to:
        where.append("i.occurred_at < %(date_to)s")
        params["date_to"] = _day_start(f.date_to + dt.timedelta(days=1))
    if f.conversation_sources is not None:
        where.append("i.conversation_source = ANY(%(conversation_sources)s::text[])")
        params["conversation_sources"] = list(f.conversation_sources)
    if f.turn_ids is not None:
        where.append("i.turn_id = ANY(%(turn_ids)s::bigint[])")
        params["turn_ids"] = [int(t) for t in f.turn_ids]
    if f.resolved_only:
        where.append("i.is_resolved")
    if exclude_item_ids:
        where.append("NOT (i.id = ANY(%(exclude)s::bigint[]))")
        params["exclude"] = list(exclude_item_ids)
    return where, params


def default_ef_search() -> int:
    """The ``hnsw.ef_search`` searches use: the RECALL_EF_SEARCH setting, else EF_SEARCH."""
    return int(getattr(settings, "RECALL_EF_SEARCH", 0) or EF_SEARCH)


def _vector_literal(query_vector: Any) -> str:
    values = query_vector.tolist() if hasattr(query_vector, "tolist") else list(query_vector)
    if len(values) != DIMENSIONS:
        raise ValueError(f"query vector has {len(values)} dimensions; the index has {DIMENSIONS}")
    return vector_literal(values)


_SET_SCAN_SETTINGS = (
    "SELECT set_config('hnsw.iterative_scan', %s, {local}),"
    " set_config('hnsw.ef_search', %s, {local}), set_config('hnsw.max_scan_tuples', %s, {local})"
)


def _scan_settings(*, iterative: str, ef_search: int, k: int) -> tuple[str, str, str]:
    return iterative, str(max(ef_search, k)), str(MAX_SCAN_TUPLES)


def apply_session_search_settings(*, connection, **_signal: object) -> None:  # noqa: ANN001
    """``connection_created`` receiver: a new database session starts with the default search settings (iterative
    scan mode, ``default_ef_search()``, MAX_SCAN_TUPLES), remembered on the connection, so a search at the defaults
    is one statement with no transaction around it. Off with RECALL_SESSION_SEARCH_SETTINGS=False (behind a
    transaction-pooling proxy, where session settings do not follow the client)."""
    connection.recall_search_settings = None
    if connection.vendor != "postgresql" or not getattr(settings, "RECALL_SESSION_SEARCH_SETTINGS", True):
        return
    values = _scan_settings(iterative=ITERATIVE_SCAN, ef_search=default_ef_search(), k=1)
    with connection.cursor() as cursor:
        cursor.execute(_SET_SCAN_SETTINGS.format(local="false"), list(values))
    connection.recall_search_settings = values


@contextmanager
def _search_cursor(*, iterative: str, ef_search: int, k: int) -> Iterator[Any]:
    """A cursor for one search with these HNSW scan settings: the session's own when it has them
    (``apply_session_search_settings``) and no transaction is open (one that is open may carry other settings an
    earlier search set for it), else set for a transaction of their own (``set_config(..., true)``)."""
    values = _scan_settings(iterative=iterative, ef_search=ef_search, k=k)
    connection.ensure_connection()
    if not connection.in_atomic_block and getattr(connection, "recall_search_settings", None) == values:
        with connection.cursor() as cursor:
            yield cursor
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SET_SCAN_SETTINGS.format(local="true"), list(values))
        yield cursor


def nearest_ids(
    *,
    query_vector: Any,
    k: int = 10,
    filters: RecallFilters | None = None,
    exclude_item_ids: Iterable[int] = (),
    model: str | None = None,
    ef_search: int | None = None,
    iterative: bool | str = True,
) -> list[tuple[int, float]]:
    """(item id, cosine distance) of the ``k`` nearest active items, nearest first (index search; benchmarks and
    ``similar_items`` use it). ``ef_search`` defaults to ``default_ef_search()``. ``iterative=False`` turns
    iterative scans off (for comparisons only: a selective filter then returns fewer than ``k``); a string picks
    the mode (``"strict_order"``, ``"relaxed_order"``), True means ITERATIVE_SCAN."""
    if iterative is True:
        iterative = ITERATIVE_SCAN
    elif iterative is False:
        iterative = "off"
    if iterative not in ("off", "strict_order", "relaxed_order"):
        raise ValueError(f"unknown iterative scan mode {iterative!r}")
    ef_search = ef_search or default_ef_search()
    k = max(1, min(int(k), MAX_K))
    where, params = _where(filters, list(exclude_item_ids))
    params.update(q=_vector_literal(query_vector), k=k, model=model or active_model_name())
    # The ORDER BY expression is the index's expression exactly, or the planner cannot use the index.
    sql = f"""
        SELECT i.id, (e.vector::halfvec({DIMENSIONS})) <=> %(q)s::halfvec({DIMENSIONS}) AS distance
        FROM {Embedding._meta.db_table} e JOIN {FeedbackItem._meta.db_table} i ON i.id = e.item_id
        WHERE {" AND ".join(where)}
        ORDER BY (e.vector::halfvec({DIMENSIONS})) <=> %(q)s::halfvec({DIMENSIONS})
        LIMIT %(k)s
    """  # noqa: S608 (the WHERE parts are constants; values are parameters)
    with _search_cursor(iterative=iterative, ef_search=ef_search, k=k) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    rows.sort(key=lambda r: (r[1], r[0]))  # relaxed order: put them back in exact order
    return [(pk, float(distance)) for pk, distance in rows]


@dataclass(slots=True)
class ItemRef:
    """What the recall API needs of an item (no model instance: the hot path reads plain rows)."""

    id: int
    conversation_id: int
    turn_id: int
    annotation_id: int | None

    @property
    def pk(self) -> int:
        return self.id


@dataclass(slots=True)
class RecallRow:
    """One nearest item with what the recall API shows of it, read in the search's own query."""

    item: ItemRef
    similarity: float
    turn_role: str
    turn_content: str
    previous_user_input: str
    correction_text: str | None
    correction_status: str | None
    correction_rationale: str | None
    annotation_body: str | None
    annotation_status: str | None
    annotation_quote: str | None
    tag_names: list[str]
    #: The correction was approved by someone who neither wrote it nor last changed it.
    correction_four_eyes: bool = False


def recall_rows(
    *,
    query_vector: Any,
    k: int,
    model: str,
    filters: RecallFilters | None = None,
    ef_search: int | None = None,
) -> list[RecallRow] | None:
    """The ``k`` items nearest to ``query_vector`` with their turn, the user input before it, the turn's correction,
    the annotation and the tag names, in one query (plus the search settings), most similar first. The search
    only matches while ``model`` is still the active model (the EmbeddingModel row, else the configured one), so a
    name cached too long never mixes models: then it returns None and the caller looks the name up again."""
    ef_search = ef_search or default_ef_search()
    k = max(1, min(int(k), MAX_K))
    where, params = _where(filters, [])
    params.update(q=_vector_literal(query_vector), k=k, model=model, configured=embeddings.model_name())
    item_t, emb_t, model_t = FeedbackItem._meta.db_table, Embedding._meta.db_table, EmbeddingModel._meta.db_table
    turn_t, corr_t = Turn._meta.db_table, Correction._meta.db_table
    ann_t, tag_t = Annotation._meta.db_table, Tag._meta.db_table
    # The active-model check is uncorrelated (one InitPlan, run once); the hits CTE is the index search of
    # nearest_ids exactly, materialised so that the joins after it cannot change its plan.
    sql = f"""
        WITH active AS (
            SELECT COALESCE((SELECT name FROM {model_t} WHERE is_active LIMIT 1), %(configured)s) AS name
        ), hits AS MATERIALIZED (
            SELECT i.id, (e.vector::halfvec({DIMENSIONS})) <=> %(q)s::halfvec({DIMENSIONS}) AS distance
            FROM {emb_t} e JOIN {item_t} i ON i.id = e.item_id
            WHERE {" AND ".join(where)} AND %(model)s = (SELECT name FROM active)
            ORDER BY (e.vector::halfvec({DIMENSIONS})) <=> %(q)s::halfvec({DIMENSIONS})
            LIMIT %(k)s
        )
        SELECT h.id, h.distance, i.conversation_id, i.turn_id, i.annotation_id, t.role, t.content,
            (SELECT u.content FROM {turn_t} u WHERE u.conversation_id = t.conversation_id
                AND u.role = %(user_role_value)s AND u.position < t.position ORDER BY u.position DESC LIMIT 1),
            c.text, c.status, c.rationale, a.body, a.status, a.exact,
            ARRAY(SELECT g.name FROM {tag_t} g WHERE g.id = ANY(i.tag_ids) ORDER BY g.name),
            COALESCE(c.approved_by_id <> c.created_by_id AND c.approved_by_id <> c.updated_by_id, false),
            (SELECT name FROM active)
        FROM (SELECT NULL) AS one
        LEFT JOIN hits h ON true
        LEFT JOIN {item_t} i ON i.id = h.id
        LEFT JOIN {turn_t} t ON t.id = i.turn_id
        LEFT JOIN {corr_t} c ON c.turn_id = i.turn_id
        LEFT JOIN {ann_t} a ON a.id = i.annotation_id
    """  # noqa: S608 (the WHERE parts are constants; values are parameters)
    params["user_role_value"] = TurnRole.USER.value
    with _search_cursor(iterative=ITERATIVE_SCAN, ef_search=ef_search, k=k) as cursor:
        cursor.execute(sql, params)
        raw = cursor.fetchall()
    # The outer (SELECT NULL) LEFT JOIN always yields a row, so the active name comes back even without hits.
    if raw and raw[0][-1] != model:
        return None
    hits = sorted((r for r in raw if r[0] is not None), key=lambda r: (r[1], r[0]))  # relaxed order: re-sort
    return [
        RecallRow(
            item=ItemRef(id=r[0], conversation_id=r[2], turn_id=r[3], annotation_id=r[4]),
            similarity=min(1.0, max(0.0, 1.0 - float(r[1]))),
            turn_role=r[5], turn_content=r[6] or "", previous_user_input=r[7] or "",
            correction_text=r[8], correction_status=r[9], correction_rationale=r[10],
            annotation_body=r[11], annotation_status=r[12], annotation_quote=r[13], tag_names=list(r[14] or []),
            correction_four_eyes=bool(r[15]),
        )
        for r in hits
    ]  # fmt: skip


def items_for_display(ids: Sequence[int]) -> dict[int, FeedbackItem]:
    """Items ``ids`` with what a results panel shows, in 2 queries: conversation, turn, the annotation or feedback
    event, the turn's correction (approved or not, ``item.turn.correction`` raises DoesNotExist when there is none,
    use ``correction_of(item)``), and ``item.tags``."""
    items = {
        item.pk: item
        for item in FeedbackItem.objects.filter(pk__in=ids).select_related(
            "conversation", "turn", "turn__correction", "annotation", "feedback_event"
        )
    }
    tag_ids = {t for item in items.values() for t in item.tag_ids}
    tags = {t.pk: t for t in Tag.objects.filter(pk__in=tag_ids)} if tag_ids else {}
    for item in items.values():
        item.tags = sorted((tags[t] for t in item.tag_ids if t in tags), key=lambda t: t.name)
    return items


def correction_of(item: FeedbackItem):  # noqa: ANN201 (annotations.Correction | None)
    """The correction of the item's turn (approved or draft), or None; no query after ``items_for_display``."""
    try:
        return item.turn.correction
    except item.turn._meta.model.correction.RelatedObjectDoesNotExist:
        return None


def similar_items(
    *,
    query_vector: Any,
    k: int = 10,
    filters: RecallFilters | None = None,
    exclude_item_ids: Iterable[int] = (),
) -> list[SimilarItem]:
    """The ``k`` items nearest to ``query_vector`` (an L2-normalised vector of the active model), most similar
    first, filtered by ``filters`` and without ``exclude_item_ids``."""
    hits = nearest_ids(query_vector=query_vector, k=k, filters=filters, exclude_item_ids=exclude_item_ids)
    items = items_for_display([pk for pk, _ in hits])
    return [
        SimilarItem(item=items[pk], similarity=min(1.0, max(0.0, 1.0 - distance)))
        for pk, distance in hits
        if pk in items
    ]


def similar_to_text(*, text: str, k: int = 10, filters: RecallFilters | None = None) -> list[SimilarItem]:
    """Items most similar to free ``text`` (embedded first by the active model's query encoder)."""
    vector = embeddings.encode([text], name=embeddings.query_identity(active_model_name()))[0]
    return similar_items(query_vector=vector, k=k, filters=filters)


def similar_to_item(*, item_id: int, k: int = 10, filters: RecallFilters | None = None) -> list[SimilarItem]:
    """Items most similar to item ``item_id`` (itself excluded), using its stored vector, or embedding its text
    when it has none yet. Raises FeedbackItem.DoesNotExist."""
    model = active_model_name()
    item = FeedbackItem.objects.only("id", "text", "text_hash").get(pk=item_id)
    stored = (
        Embedding.objects.filter(item_id=item.pk, model=model, text_hash=item.text_hash)
        .values_list("vector", flat=True)
        .first()
    )
    if stored is None:
        stored = embeddings.encode([item.text], name=model)[0]
    return similar_items(query_vector=stored, k=k, filters=filters, exclude_item_ids=[item.pk])


def user_input_before(turn: Turn) -> str | None:
    """The content of the last user turn before ``turn`` in its conversation (what a reply answered), if any."""
    return (
        Turn.objects.filter(conversation_id=turn.conversation_id, role=TurnRole.USER, position__lt=turn.position)
        .order_by("-position")
        .values_list("content", flat=True)
        .first()
    )


def item_ids_of_turn(turn_id: int) -> list[int]:
    return list(FeedbackItem.objects.filter(turn_id=turn_id).values_list("pk", flat=True))


def item_id_of_annotation(annotation_id: int) -> int | None:
    """The annotation's feedback item, or None while it is not synced yet."""
    return FeedbackItem.objects.filter(annotation_id=annotation_id).values_list("pk", flat=True).first()


__all__ = [
    "ItemRef",
    "RecallFilters",
    "RecallRow",
    "SimilarItem",
    "active_model_name",
    "correction_of",
    "default_ef_search",
    "item_id_of_annotation",
    "item_ids_of_turn",
    "items_for_display",
    "nearest_ids",
    "recall_rows",
    "active_model_name_cached",
    "clear_caches",
    "similar_items",
    "similar_to_item",
    "similar_to_text",
    "user_input_before",
]


def embedding_backlog() -> int:
    """Active feedback items still waiting for their vector (the partial index on embedding_pending serves it)."""
    return FeedbackItem.objects.filter(embedding_pending=True, is_active=True).count()
