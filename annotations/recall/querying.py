"""Embedding one search query inside a web process (the recall API, the search page, the review panels).

Queries are embedded by the query encoder of the active model (``embeddings.query_identity``: for torch vectors the
fp32 ONNX export of the same weights). A web process serves several requests at once on a machine that also runs
PostgreSQL and workers: with the libraries' default of one spinning thread per core, one query took ten times longer
here under load (see docs/recall.md). So the first query a process embeds (or ``warm_up``) sets the embedding
library to ``RECALL_QUERY_THREADS`` threads (default 2, whose ONNX threads sleep between operators instead of
spinning; 0 leaves it alone). Only processes that embed queries run this; the embedding worker keeps its own setting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from annotations.recall import selectors
from annotations.recall import text as item_text
from feedbackhub import embeddings
from sessions.models import Turn

_configured = False
_lock = threading.Lock()


def _configure() -> None:
    global _configured
    with _lock:
        if _configured:
            return
        threads = int(getattr(settings, "RECALL_QUERY_THREADS", 1) or 0)
        if threads > 0:
            embeddings.set_threads(threads)
        _configured = True


def embed_query(text: str, *, model: str | None = None) -> Any:
    """The L2-normalised vector of ``text`` for searching the vectors of ``model`` (default: the active one), by its
    query encoder (``embeddings.query_identity``), loaded once per process."""
    if not _configured:
        _configure()
    return embeddings.encode([text], name=embeddings.query_identity(model or selectors.active_model_name()))[0]


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


def similar_to_turn(*, turn: Turn, k: int) -> list[selectors.SimilarItem]:
    """Feedback on other replies similar to the exchange that ends in ``turn`` (feedback on this same reply is not
    a "past case" of it)."""
    text = item_text.exchange_text(query=selectors.user_input_before(turn), reply=turn.content)
    own = selectors.item_ids_of_turn(turn.pk)
    _, similar = similar_to_query(text=text, k=k, exclude_item_ids=own)
    return [s for s in similar if s.item.turn_id != turn.pk]


def recall_query(
    *, text: str, k: int, filters: selectors.RecallFilters | None = None
) -> tuple[str, list[selectors.RecallRow]]:
    """(the active model's name, the ``k`` nearest items to ``text`` as plain rows): the recall API's hot path.
    The model name is cached for a minute; the search itself checks that it is still the active one, and on a
    switch this looks it up again and embeds the text with the new model."""
    model = selectors.active_model_name_cached()
    rows = selectors.recall_rows(query_vector=embed_query(text, model=model), k=k, model=model, filters=filters)
    if rows is None:  # the active model changed since it was cached
        selectors.clear_caches()
        model = selectors.active_model_name_cached()
        rows = selectors.recall_rows(query_vector=embed_query(text, model=model), k=k, model=model, filters=filters)
    return model, rows or []


def warm_up() -> str:
    """Load the active model now and embed one text (web processes call it at start, see feedbackhub/wsgi.py), so
    the first request does not wait for the load. Returns the model's name."""
    model = selectors.active_model_name()
    embed_query("warm up", model=model)
    return model
