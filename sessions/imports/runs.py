"""Who runs an import, and what happens when its worker dies: claiming, heartbeats, the sweeper and retry.

An import is run by at most one worker at a time. A run **claims** the batch (``import_batch_claim``): a QUEUED batch,
or a RUNNING one whose worker stopped reporting; the claim bumps ``attempts``, which the run then holds as its
ticket. While it runs, the worker bumps ``heartbeat_at`` with every committed chunk and at least every
``HEARTBEAT_SECONDS`` in between (``import_batch_heartbeat``); each bump checks the ticket, so a run that was taken
over (or sent back to the queue) stops at its next chunk with :class:`Superseded`, and the chunk it was merging rolls
back.

Every committed chunk also commits the batch's counters, ``records_read`` included, in the same transaction: that is
the progress marker a later run resumes from (it skips that many records without merging them), and the reason the
report of a resumed import counts each record exactly once.

The **sweeper** (``import_batches_sweep``, a beat task every minute) finds RUNNING batches whose heartbeat is older
than ``IMPORT_STALE_SECONDS`` and sends them back to the queue (a new task resumes them), or marks them FAILED after
``IMPORT_MAX_ATTEMPTS`` runs. A FAILED batch whose upload is still on the server can be retried from its page
(``import_batch_retry``): it resumes the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from feedbackhub.outbox import enqueue_on_commit
from sessions.models import ImportBatch, ImportStatus

logger = logging.getLogger(__name__)

#: A running import bumps its heartbeat at least this often, also while it reads without merging (a resume).
HEARTBEAT_SECONDS = 10.0


class Superseded(Exception):
    """This run no longer owns the batch: the sweeper sent it back to the queue, or another run claimed it."""


def _stale_before(stale_seconds: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=stale_seconds)


@transaction.atomic
def import_batch_claim(*, batch_id: int, stale_seconds: float) -> ImportBatch | None:
    """Take the batch for this run and mark it RUNNING; None when it is finished, gone, or another worker is
    running it and reporting (a duplicate delivery of its message)."""
    batch = ImportBatch.objects.select_for_update().filter(pk=batch_id).first()
    if batch is None:
        return None
    if batch.status != ImportStatus.QUEUED and not is_stale(batch, stale_seconds=stale_seconds):
        return None
    now = timezone.now()
    batch.status = ImportStatus.RUNNING
    batch.attempts += 1
    batch.heartbeat_at = now
    batch.finished_at = None
    batch.save(update_fields=["status", "attempts", "heartbeat_at", "finished_at"])
    return batch


def import_batch_heartbeat(*, batch: ImportBatch) -> None:
    """Tell the sweeper this run is alive; raises Superseded when it no longer owns the batch. Inside a chunk's
    transaction the check holds the batch row until that chunk commits."""
    owned = ImportBatch.objects.filter(pk=batch.pk, status=ImportStatus.RUNNING, attempts=batch.attempts).update(
        heartbeat_at=timezone.now()
    )
    if not owned:
        raise Superseded(f"import batch {batch.pk} was taken over (run {batch.attempts})")


def import_batches_sweep(*, process: Any, stale_seconds: float, max_attempts: int) -> tuple[list[int], list[int]]:
    """Requeue (through ``process``, the import task) or fail the RUNNING batches whose worker stopped reporting
    ``stale_seconds`` ago. Returns (requeued ids, failed ids)."""
    requeued: list[int] = []
    failed: list[int] = []
    with transaction.atomic():
        stale = ImportBatch.objects.select_for_update(skip_locked=True).filter(
            status=ImportStatus.RUNNING, heartbeat_at__lt=_stale_before(stale_seconds)
        )
        for batch in stale:
            if batch.attempts >= max_attempts or not batch.stored_path:
                batch.status = ImportStatus.FAILED
                batch.finished_at = timezone.now()
                batch.error = (
                    f"{batch.file_name}: the worker running this import stopped reporting "
                    f"({batch.attempts} run{'s' if batch.attempts != 1 else ''}); "
                    f"{batch.records_read} records were imported before it stopped. Retry resumes from there."
                )
                batch.save(update_fields=["status", "finished_at", "error"])
                failed.append(batch.pk)
            else:
                batch.status = ImportStatus.QUEUED
                batch.save(update_fields=["status"])
                enqueue_on_commit(process, batch.pk)
                requeued.append(batch.pk)
    if requeued or failed:
        logger.warning(
            "import sweeper: requeued %s, failed %s (no heartbeat for %s s)", requeued, failed, stale_seconds
        )
    return requeued, failed


def is_stale(batch: ImportBatch, *, stale_seconds: float) -> bool:
    """A RUNNING batch whose worker has not reported for ``stale_seconds``."""
    return batch.status == ImportStatus.RUNNING and (
        batch.heartbeat_at is None or batch.heartbeat_at < _stale_before(stale_seconds)
    )


def can_retry(batch: ImportBatch, *, stale_seconds: float) -> bool:
    """Failed, or running with no sign of life; and its uploaded file still on the server."""
    retryable = batch.status == ImportStatus.FAILED or is_stale(batch, stale_seconds=stale_seconds)
    return retryable and bool(batch.stored_path) and Path(batch.stored_path).is_file()


class NotRetryable(ValueError):
    pass


@transaction.atomic
def import_batch_retry(*, batch_id: int, process: Any, stale_seconds: float) -> ImportBatch:
    """Queue a failed (or stale) import again; it resumes after its last committed chunk. Raises NotRetryable."""
    batch = ImportBatch.objects.select_for_update().filter(pk=batch_id).first()
    if batch is None or not can_retry(batch, stale_seconds=stale_seconds):
        raise NotRetryable("Only a failed or stalled import whose uploaded file is still on the server can be retried.")
    batch.status = ImportStatus.QUEUED
    batch.error = ""
    batch.finished_at = None
    batch.save(update_fields=["status", "error", "finished_at"])
    enqueue_on_commit(process, batch.pk)
    return batch
