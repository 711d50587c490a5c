"""Celery tasks of semantic recall: thin adapters that take ids and call one service.

``embed_pending`` is enqueued (after commit) whenever item text changes, and sent by beat every minute as a safety
net. Late acks plus ``reject_on_worker_lost``: a worker that dies mid-batch leaves the message unacknowledged, so it
is delivered again; the service's per-batch transactions and ON CONFLICT DO NOTHING make the rerun exact.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_init, worker_process_init
from django.conf import settings

logger = logging.getLogger(__name__)

_RETRY = {
    "autoretry_for": (Exception,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(
    name="recall.embed_pending", ignore_result=True, acks_late=True, reject_on_worker_lost=True, **_RETRY
)
def embed_pending() -> int:
    """Embed every item waiting for a vector of the active model; after about a minute of work, hand the rest to a
    fresh task so no single message stays unacknowledged for long."""
    from annotations.recall.services import EMBED_RUN_SECONDS, embeddings_embed_pending  # noqa: PLC0415

    result = embeddings_embed_pending(max_seconds=EMBED_RUN_SECONDS)
    if result.more:
        embed_pending.delay()
    if result.embedded:
        logger.info("embedded %s feedback items in %s batches", result.embedded, result.batches)
    return result.embedded


@shared_task(name="recall.sync_import_batch", ignore_result=True, acks_late=True, **_RETRY)
def sync_import_batch(batch_id: int) -> None:
    """Create or update the feedback items of what import batch ``batch_id`` wrote (idempotent)."""
    from annotations.recall.services import feedback_items_sync_for_import  # noqa: PLC0415

    result = feedback_items_sync_for_import(batch_id=batch_id)
    logger.info("import %s: feedback items %s", batch_id, result)


@shared_task(name="recall.sync_annotation", ignore_result=True, acks_late=True, **_RETRY)
def sync_annotation(annotation_id: int) -> None:
    from annotations.recall.services import feedback_item_sync_for_annotation  # noqa: PLC0415

    feedback_item_sync_for_annotation(annotation_id=annotation_id)


# Loading torch and the model takes seconds; a worker pays it at start instead of on its first embed task when
# EMBEDDING_PRELOAD is on (see docs/recall.md for the measurement).
def _preload(**_kwargs) -> None:
    if not getattr(settings, "EMBEDDING_PRELOAD", True):
        return
    from feedbackhub import embeddings  # noqa: PLC0415

    try:
        embeddings.get_model()
    except Exception:  # a worker without the model still serves every other task
        logger.exception("could not preload the embedding model")


@worker_process_init.connect
def _preload_in_child(**kwargs) -> None:
    _preload(**kwargs)


@worker_init.connect
def _preload_in_solo_worker(sender=None, **kwargs) -> None:
    # The prefork pool's children load in worker_process_init; a solo or threads worker has no children.
    pool = getattr(getattr(sender, "pool_cls", None), "__module__", "") or str(getattr(sender, "pool_cls", ""))
    if "prefork" not in pool:
        _preload(**kwargs)
