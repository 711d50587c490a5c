"""Celery tasks of the insights app: thin adapters that keep the dashboard's daily rollup fresh.

* ``insights.rollup_refresh_batch``: enqueued (after commit) by every import that wrote sessions;
* ``insights.rollup_refresh_pending``: beat, every few minutes: catches imports whose task was lost;
* ``insights.rollup_rebuild``: beat, nightly: recomputes everything (sessions edited or deleted by hand).
"""

from __future__ import annotations

import logging

from celery import shared_task

from annotations.insights import services

logger = logging.getLogger(__name__)


@shared_task(name="insights.rollup_refresh_batch", ignore_result=True, acks_late=True)
def rollup_refresh_batch(batch_id: int) -> None:
    days = services.rollup_refresh_batch(batch_id=batch_id)
    logger.info("rollup: %s days refreshed for import %s", days, batch_id)


@shared_task(name="insights.rollup_refresh_pending", ignore_result=True)
def rollup_refresh_pending() -> None:
    days = services.rollup_refresh_pending()
    if days:
        logger.info("rollup: %s days refreshed for imports finished since the last check", days)


@shared_task(name="insights.rollup_rebuild", ignore_result=True)
def rollup_rebuild() -> None:
    services.rollup_rebuild()
