"""Celery adapters of review queues: live queues take in new matches after every import and once a minute
(beat's ``queues-refresh-live``; idempotent: a reply already in a queue is not added twice), and a reviewer's next
items are rendered ahead while they work on the current one (``annotations.queues.prefetch``)."""

from __future__ import annotations

import logging

from celery import shared_task

from annotations.queues import prefetch, services

logger = logging.getLogger(__name__)


@shared_task(name="queues.refresh_live", ignore_result=True, acks_late=True, coalesced=True)
def refresh_live() -> int:
    added = services.live_queues_refresh()
    if added:
        logger.info("review queues: %s new replies joined live queues", added)
    return added


@shared_task(name="queues.warm_upcoming", ignore_result=True)
def warm_upcoming(queue_id: int, reviewer_id: int) -> int:
    return prefetch.warm_upcoming(queue_id, reviewer_id)
