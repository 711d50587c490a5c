"""Reads of semantic recall: nearest feedback items to a vector, a text or another item.

Search runs on the HNSW index over half-precision copies of the active model's vectors (cosine distance), joined to
the items for the filters. Inside one transaction it sets ``hnsw.iterative_scan = relaxed_order`` (pgvector 0.8):
when filters drop most candidates the index scan keeps going until ``k`` rows pass or ``hnsw.max_scan_tuples``
candidates were looked at, so a selective filter still returns ``k`` results. Relaxed order may return them slightly
out of order; they are sorted again here by exact distance.

The returned items come with their conversation, turn, source (annotation or feedback event), the turn's correction
(approved or not) and their tags, in a fixed number of queries for any ``k`` (pinned by a test).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from annotations.models import Tag
from annotations.recall.models import DIMENSIONS, Embedding, EmbeddingModel, FeedbackItem, SourceKind

#: Candidates the HNSW scan keeps per step; more is slower and closer to exact. Measured in bench/recall_bench.py.
EF_SEARCH = 40
#: Most candidates an iterative scan looks at before giving up on filling ``k`` (pgvector's default).
MAX_SCAN_TUPLES = 20_000
MAX_K = 100


@dataclass
class RecallFilters:
    """Filters of a recall search; empty values do not filter. ``tag_ids`` matches items with any of the tags;
    ``date_from``/``date_to`` bound when the feedback was given (inclusive days, in TIME_ZONE); ``source`` is a
    ``SourceKind`` value; ``resolved_only`` keeps items whose annotation is resolved or whose turn has an approved
    correction."""

    environment: str = ""
    model_version: str = ""
    user_role: str = ""
    tag_ids: list[int] = field(default_factory=list)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    source: str = ""
    resolved_only: bool = False


@dataclass
class SimilarItem:
    item: FeedbackItem
    #: Cosine similarity, 0..1 (1 = same direction).
    similarity: float


def active_model_name() -> str:
    """The model searches use: the active EmbeddingModel row, else the EMBEDDING_MODEL setting."""
    from feedbackhub import embeddings  # noqa: PLC0415 (no torch: only settings are read)

    name = EmbeddingModel.objects.filter(is_active=True).values_list("name", flat=True).first()
    return name or embeddings.model_name()


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
    if f.resolved_only:
        where.append("i.is_resolved")
    if exclude_item_ids:
        where.append("NOT (i.id = ANY(%(exclude)s::bigint[]))")
        params["exclude"] = list(exclude_item_ids)
    return where, params


def _vector_literal(query_vector: Any) -> str:
    values = query_vector.tolist() if hasattr(query_vector, "tolist") else list(query_vector)
    if len(values) != DIMENSIONS:
        raise ValueError(f"query vector has {len(values)} dimensions; the index has {DIMENSIONS}")
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def nearest_ids(
    *,
    query_vector: Any,
    k: int = 10,
    filters: RecallFilters | None = None,
    exclude_item_ids: Iterable[int] = (),
    model: str | None = None,
    ef_search: int = EF_SEARCH,
    iterative: bool = True,
) -> list[tuple[int, float]]:
    """(item id, cosine distance) of the ``k`` nearest active items, nearest first (index search; benchmarks and
    ``similar_items`` use it). ``iterative=False`` turns iterative scans off (for comparisons only: a selective
    filter then returns fewer than ``k``)."""
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
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', %s, true),"
            " set_config('hnsw.ef_search', %s, true), set_config('hnsw.max_scan_tuples', %s, true)",
            ["relaxed_order" if iterative else "off", str(max(ef_search, k)), str(MAX_SCAN_TUPLES)],
        )
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    rows.sort(key=lambda r: (r[1], r[0]))  # relaxed order: put them back in exact order
    return [(pk, float(distance)) for pk, distance in rows]


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
    """Items most similar to free ``text`` (embedded with the active model first)."""
    from feedbackhub import embeddings  # noqa: PLC0415

    vector = embeddings.encode([text], name=active_model_name())[0]
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
        from feedbackhub import embeddings  # noqa: PLC0415

        stored = embeddings.encode([item.text], name=model)[0]
    return similar_items(query_vector=stored, k=k, filters=filters, exclude_item_ids=[item.pk])


__all__ = [
    "RecallFilters",
    "SimilarItem",
    "active_model_name",
    "correction_of",
    "items_for_display",
    "nearest_ids",
    "similar_items",
    "similar_to_item",
    "similar_to_text",
]
