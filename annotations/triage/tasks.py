"""Celery adapters of the triage app: the clustering job and the re-cluster, both sent by beat.

Beat sends ``triage.cluster_new`` every TRIAGE_CLUSTER_INTERVAL seconds (default 60) and ``triage.recluster`` every
TRIAGE_RECLUSTER_INTERVAL seconds (default 3600); ``triage.cluster_new`` is also sent as soon as feedback items get
their vectors (``receivers``). Both are idempotent and take the triage advisory lock, so a late
or doubled message costs one look-up. Late acks: a worker killed mid-run leaves the message to be delivered again,
and the per-batch transactions make the rerun exact.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_init

from annotations.triage import clustering, job, proposals

logger = logging.getLogger(__name__)


#: A clustering run that found another run holding the triage lock tries again after this many seconds.
LOCKED_OUT_RETRY_SECONDS = 5


@shared_task(name="triage.cluster_new", ignore_result=True, acks_late=True, reject_on_worker_lost=True,
             coalesced=True)
def cluster_new() -> int:
    result = job.triage_run()
    if result.locked_out:
        # The run holding the lock may have read its batch before this run's items got their vectors (this run was
        # sent when they did): look again once it is done rather than leave them to the next scheduled run.
        cluster_new.apply_async(countdown=LOCKED_OUT_RETRY_SECONDS)
    if result.items:
        logger.info("triage: %s items clustered (%s joined open clusters, %s new clusters) in %s batches",
                    result.items, result.assigned, result.new_clusters, result.batches)
    return result.items


@shared_task(name="triage.recluster", ignore_result=True, acks_late=True)
def recluster() -> int:
    # Safety net first: anything the cursor-based runs missed (see job.CURSOR_MARGIN).
    job.triage_run(full_scan=True)
    result = proposals.triage_recluster()
    logger.info("triage re-cluster: %s merge and %s split proposals", result.merges, result.splits)
    return result.merges + result.splits


@worker_init.connect
def _preload(**_kwargs) -> None:
    """A worker loads scikit-learn when it starts, not inside its first clustering run."""
    clustering.preload()
