"""Celery tasks of semantic recall: thin adapters that take ids and call one service.

``embed_pending`` is enqueued (after commit) whenever item text changes, and sent by beat every minute as a safety
net. Late acks plus ``reject_on_worker_lost``: a worker that dies mid-chunk leaves the message unacknowledged, so it
is delivered again; the service's per-chunk transactions and ON CONFLICT DO NOTHING make the rerun exact.
"""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_process_init, worker_ready
from django.conf import settings

from annotations.recall import embedding, events, services
from feedbackhub import embeddings, outbox

logger = logging.getLogger(__name__)

_RETRY = {
    "autoretry_for": (Exception,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(
    name="recall.embed_pending", ignore_result=True, acks_late=True, reject_on_worker_lost=True, coalesced=True,
    **_RETRY,
)
def embed_pending() -> int:
    """Embed every item waiting for a vector of the active model; after about a minute of work, hand the rest to a
    fresh task so no single message stays unacknowledged for long."""
    result = embedding.embeddings_embed_pending(max_seconds=embedding.EMBED_RUN_SECONDS,
                                               chunk_size=settings.EMBEDDING_CHUNK_SIZE)
    if result.more:
        outbox.send(embed_pending)
    if result.embedded:
        logger.info("embedded %s feedback items in %s chunks", result.embedded, result.chunks)
        events.feedback_items_embedded.send(sender=embed_pending, count=result.embedded)
    return result.embedded


@shared_task(name="recall.sync_feedback", ignore_result=True, acks_late=True, coalesced=True, **_RETRY)
def sync_feedback(annotation_id: int | None = None, turn_id: int | None = None) -> None:
    """Sync the feedback item of an annotation that was just saved, and/or the resolution of a turn's items; then,
    when its text changed, have its vector made."""
    if services.feedback_sync(annotation_id=annotation_id, turn_id=turn_id):
        _embed_soon()


@shared_task(name="recall.sync_import_batch", ignore_result=True, acks_late=True, **_RETRY)
def sync_import_batch(batch_id: int) -> None:
    """Create or update the feedback items of what import batch ``batch_id`` wrote (idempotent), then have the
    changed ones embedded."""
    result = services.feedback_items_sync_for_import(batch_id=batch_id)
    logger.info("import %s: feedback items %s", batch_id, result)
    if result.to_embed:
        _embed_soon()


@shared_task(name="recall.sync_feedback_events", ignore_result=True, acks_late=True, **_RETRY)
def sync_feedback_events(event_ids: list[int]) -> None:
    """Create or update the feedback items of end-user feedback events that arrived live (idempotent), then have
    the changed ones embedded."""
    result = services.feedback_items_sync_for_feedback_events(event_ids=event_ids)
    if result.to_embed:
        _embed_soon()


def _embed_soon() -> None:
    # Through the outbox: a save while Redis is down still succeeds; the beat safety net embeds it later anyway.
    outbox.enqueue_once_on_commit(embed_pending)


# Loading torch and the model takes seconds (minutes on a busy machine): a worker starts loading it in a background
# thread as soon as it is up (EMBEDDING_PRELOAD), so it is ready for work at once, other tasks are not held up, and
# the first embed task waits only for whatever is left of the load (docs/recall.md has the measurements).
def _preload() -> None:
    if not settings.EMBEDDING_PRELOAD:
        return
    def load() -> None:
        try:
            embeddings.get_model()
        except Exception:  # a worker without the model still serves every other task
            logger.exception("could not preload the embedding model")

    threading.Thread(target=load, name="embedding-model-preload", daemon=True).start()


@worker_process_init.connect
def _preload_in_child(**_kwargs) -> None:
    _preload()  # a prefork pool's child process


@worker_ready.connect
def _preload_in_solo_worker(sender=None, **_kwargs) -> None:
    # A solo or threads worker has no children; a prefork parent never embeds (its children do).
    pool = getattr(getattr(sender, "controller", None), "pool_cls", None) or getattr(sender, "pool_cls", None)
    if "prefork" not in f"{getattr(pool, '__module__', '')}{pool}":
        _preload()
