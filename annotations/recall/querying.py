"""Embedding one search query inside a web process (the recall API, the search page, the review panels).

A single short text gains nothing from torch's intra-op parallelism, and a web process serves several requests at
once on a machine that also runs PostgreSQL and workers: with its default of one thread per core, torch's threads
spin against everything else and one query took ten times longer here under load (see docs/recall.md). So the first
query a process embeds sets torch to ``RECALL_QUERY_THREADS`` threads (default 1; 0 leaves torch alone). Only
processes that embed queries run this; the embedding worker keeps its own setting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from annotations.recall import selectors

_configured = False
_lock = threading.Lock()


def _configure() -> None:
    global _configured
    with _lock:
        if _configured:
            return
        threads = int(getattr(settings, "RECALL_QUERY_THREADS", 1) or 0)
        if threads > 0:
            import torch  # noqa: PLC0415 (only processes that embed import torch)

            torch.set_num_threads(threads)
        _configured = True


def embed_query(text: str, *, model: str | None = None) -> Any:
    """The L2-normalised vector of ``text`` by ``model`` (default: the active one), loaded once per process."""
    from feedbackhub import embeddings  # noqa: PLC0415

    if not _configured:
        _configure()
    return embeddings.encode([text], name=model or selectors.active_model_name())[0]


def similar_to_query(
    *, text: str, k: int, filters: selectors.RecallFilters | None = None, exclude_item_ids: Iterable[int] = ()
) -> tuple[str, list[selectors.SimilarItem]]:
    """(the active model's name, the items most similar to ``text``): ``selectors.similar_items`` with the model
    looked up once for the whole request instead of once per step."""
    model = selectors.active_model_name()
    vector = embed_query(text, model=model)
    hits = selectors.nearest_ids(
        query_vector=vector, k=k, filters=filters, exclude_item_ids=exclude_item_ids, model=model
    )
    items = selectors.items_for_display([pk for pk, _ in hits])
    similar = [
        selectors.SimilarItem(item=items[pk], similarity=min(1.0, max(0.0, 1.0 - distance)))
        for pk, distance in hits
        if pk in items
    ]
    return model, similar
