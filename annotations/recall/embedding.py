"""Writes of semantic recall: vectors follow the feedback items' text.

* ``embeddings_embed_pending`` embeds, in batches, the active items whose current text has no vector for a model.
  It is idempotent: a vector is unique by (item, model, text hash) and inserted with ON CONFLICT DO NOTHING, each
  batch commits on its own, and rows are claimed with FOR UPDATE SKIP LOCKED so concurrent runs share the work.
  A run killed mid-batch rolls that batch back and the next run does it.
* ``embedding_model_activate`` switches search to another model (after ``reembed`` embedded everything with it);
  ``embeddings_drop`` deletes an inactive model's vectors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotations.recall import selectors
from annotations.recall.models import DIMENSIONS, Embedding, EmbeddingModel, FeedbackItem
from feedbackhub import embeddings
from feedbackhub.vectors import vector_literal

#: Texts per forward pass of the model.
EMBED_BATCH_SIZE = 64
#: Items claimed, embedded and committed together (one transaction). Several forward passes per chunk let the model
#: sort texts by length across the chunk, so batches pad less; measured in bench/recall_bench.py.
EMBED_CHUNK_SIZE = 256
#: One run of the embed task stops after about this long and re-enqueues itself if more is pending, so a large
#: backlog never holds one task (and its unacknowledged message) for long.
EMBED_RUN_SECONDS = 60.0

def active_model_name() -> str:
    return selectors.active_model_name()


# The active model: flagged items, through the partial index on embedding_pending (a few pages however many items
# there are). The flag may be stale (a vector already there): such items are only unflagged.
_FLAGGED_SQL = f"""
SELECT i.id, i.text, i.text_hash, EXISTS (
    SELECT 1 FROM {Embedding._meta.db_table} e WHERE e.item_id = i.id AND e.model = %(model)s
    AND e.text_hash = i.text_hash)
FROM {FeedbackItem._meta.db_table} i
WHERE i.embedding_pending AND i.is_active AND i.id > %(last)s
ORDER BY i.id LIMIT %(n)s
FOR UPDATE OF i SKIP LOCKED
"""  # noqa: S608 (table names are constants)

# Another model (reembed): every active item without a vector of it, walking the items in id order.
_MISSING_SQL = f"""
SELECT i.id, i.text, i.text_hash, false FROM {FeedbackItem._meta.db_table} i
WHERE i.is_active AND i.id > %(last)s AND NOT EXISTS (
    SELECT 1 FROM {Embedding._meta.db_table} e WHERE e.item_id = i.id AND e.model = %(model)s
    AND e.text_hash = i.text_hash)
ORDER BY i.id LIMIT %(n)s
FOR UPDATE OF i SKIP LOCKED
"""  # noqa: S608

_UNFLAG_SQL = f"UPDATE {FeedbackItem._meta.db_table} SET embedding_pending = false WHERE id = ANY(%s)"  # noqa: S608

_INSERT_SQL = f"""
INSERT INTO {Embedding._meta.db_table} (item_id, model, text_hash, vector, created_at)
SELECT u.item_id, %s, u.text_hash, u.vector::vector({DIMENSIONS}), now()
FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS u(item_id, text_hash, vector)
ON CONFLICT (item_id, model, text_hash) DO NOTHING
"""  # noqa: S608

_DROP_STALE_SQL = f"""
DELETE FROM {Embedding._meta.db_table} e USING {FeedbackItem._meta.db_table} i
WHERE e.item_id = i.id AND e.item_id = ANY(%s) AND e.model = %s AND e.text_hash <> i.text_hash
"""  # noqa: S608


@dataclass
class EmbedResult:
    embedded: int = 0
    #: Chunks committed.
    chunks: int = 0
    #: Whether items may still be waiting (the run stopped on its time or batch budget).
    more: bool = False


def _pin_active_model(name: str) -> None:
    """With no EmbeddingModel row the active model is the configured one (EMBEDDING_MODEL by EMBEDDING_BACKEND), so
    changing those settings would silently point searches at a model with no vectors. The first embed records the
    model it embeds with as the active row; from then on only ``reembed`` changes it."""
    if EmbeddingModel.objects.filter(is_active=True).exists():
        return
    record, _ = EmbeddingModel.objects.get_or_create(name=name, defaults={"dimensions": DIMENSIONS})
    if not record.is_active:
        EmbeddingModel.objects.filter(pk=record.pk).update(is_active=True, activated_at=timezone.now())


def embeddings_embed_pending(
    *,
    model: str | None = None,
    chunk_size: int = EMBED_CHUNK_SIZE,
    batch_size: int = EMBED_BATCH_SIZE,
    max_chunks: int | None = None,
    max_seconds: float | None = None,
    encode: Callable[[list[str]], Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed active items whose current text has no vector for ``model`` (default: the active model): ``chunk_size``
    items per transaction (claimed with FOR UPDATE SKIP LOCKED), ``batch_size`` texts per forward pass, until none
    is left or a budget (``max_chunks``, ``max_seconds``) is spent. ``encode`` replaces the model call (tests use it
    to fail on purpose); ``progress(n)`` is called with the number embedded after each chunk. Stale vectors of an
    embedded item (same model, older text) are removed."""
    active = active_model_name()
    model = model or active
    if model == active:
        _pin_active_model(active)
    pending_sql = _FLAGGED_SQL if model == active else _MISSING_SQL
    encode = encode or partial(embeddings.encode, name=model, batch_size=batch_size)
    result = EmbedResult()
    started = time.monotonic()
    last_id = 0
    while True:
        if max_chunks is not None and result.chunks >= max_chunks:
            result.more = True
            break
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            result.more = True
            break
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(pending_sql, {"last": last_id, "model": model, "n": chunk_size})
            claimed = cursor.fetchall()
            if not claimed:
                break
            rows = [r for r in claimed if not r[3]]
            ids = [r[0] for r in rows]
            if rows:
                vectors = encode([r[1] for r in rows])
                if len(vectors) != len(rows) or (len(vectors) and len(vectors[0]) != DIMENSIONS):
                    raise ValueError(
                        f"model {model!r} made {len(vectors)} vectors of width "
                        f"{len(vectors[0]) if len(vectors) else 0} for {len(rows)} texts; the table stores {DIMENSIONS}"
                    )
                cursor.execute(_INSERT_SQL, [model, ids, [r[2] for r in rows], [vector_literal(v) for v in vectors]])
                result.embedded += cursor.rowcount
                cursor.execute(_DROP_STALE_SQL, [ids, model])
            if model == active:
                cursor.execute(_UNFLAG_SQL, [[r[0] for r in claimed]])
        last_id = claimed[-1][0]
        result.chunks += 1
        if progress is not None:
            progress(len(rows))
    return result


def embeddings_pending_count(*, model: str | None = None) -> int:
    """How many active items lack a vector of their current text for ``model`` (default: the active model)."""
    model = model or active_model_name()
    has_vector = Embedding.objects.filter(item_id=OuterRef("pk"), model=model, text_hash=OuterRef("text_hash"))
    return FeedbackItem.objects.filter(is_active=True).exclude(Exists(has_vector)).count()


@transaction.atomic
def embedding_model_activate(*, name: str, drop_others: bool = False) -> EmbeddingModel:
    """Make ``name`` the model searches use (and the embed task keeps up to date). ``drop_others`` deletes every
    other model's vectors. The caller makes sure ``name`` has vectors first (``manage.py reembed`` does)."""
    now = timezone.now()
    EmbeddingModel.objects.filter(is_active=True).exclude(name=name).update(is_active=False)
    record, _ = EmbeddingModel.objects.get_or_create(name=name, defaults={"dimensions": DIMENSIONS})
    if not record.is_active:
        record.is_active = True
        record.activated_at = now
        record.save(update_fields=["is_active", "activated_at"])
        # Whatever the new model has no vector of (changed while reembed ran, or never embedded) is the embed
        # task's work from now on.
        has_vector = Embedding.objects.filter(item_id=OuterRef("pk"), model=name, text_hash=OuterRef("text_hash"))
        FeedbackItem.objects.filter(is_active=True, embedding_pending=False).exclude(Exists(has_vector)).update(
            embedding_pending=True
        )
    if drop_others:
        Embedding.objects.exclude(model=name).delete()
    return record


def embeddings_drop(*, model: str) -> int:
    """Delete every vector of ``model`` (not the active one). Returns how many."""
    if model == active_model_name():
        raise ValueError(f"{model!r} is the active model; activate another one first")
    with transaction.atomic():
        return Embedding.objects.filter(model=model).delete()[0]
