"""Celery tasks of the sessions app: thin adapters that take ids and call one service.

Time limits: every task has the project's default soft and hard limits (``CELERY_TASK_SOFT_TIME_LIMIT``,
``CELERY_TASK_TIME_LIMIT``). An import has its own, per run rather than per file: at the soft limit the run stops
between chunks (the chunk being merged rolls back), the batch goes back to the queue and a new task resumes it after
its last committed chunk, so a file of any size finishes in as many runs as it needs (docs/import-format.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from feedbackhub.outbox import enqueue_on_commit
from sessions.imports.runs import import_batch_claim, import_batches_sweep
from sessions.imports.uploads import import_batch_fail, upload_discard
from sessions.models import ImportStatus
from sessions.services import import_batch_run

logger = logging.getLogger(__name__)


@shared_task(
    name="sessions.tasks.import_batch_process",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.IMPORT_RUN_SOFT_TIME_LIMIT,
    time_limit=settings.IMPORT_RUN_SOFT_TIME_LIMIT + 120,
)
def import_batch_process(batch_id: int) -> None:
    """Import (or resume importing) the uploaded file of batch ``batch_id``; on success its upload is deleted.

    Safe to deliver twice: the run claims the batch first (sessions.imports.runs), so a finished batch, or one another
    worker is running and reporting, is left alone; an interrupted one resumes after its last committed chunk.
    """
    batch = import_batch_claim(batch_id=batch_id, stale_seconds=settings.IMPORT_STALE_SECONDS)
    if batch is None:
        logger.info("import batch %s: nothing to do (finished, gone, or running elsewhere)", batch_id)
        return
    if not batch.stored_path or not Path(batch.stored_path).is_file():
        import_batch_fail(batch_id=batch_id, error=f"{batch.file_name}: the uploaded file is no longer on the server")
        return
    try:
        batch = import_batch_run(batch=batch, path=Path(batch.stored_path), interrupt=(SoftTimeLimitExceeded,))
    except SoftTimeLimitExceeded:
        logger.info(
            "import batch %s reached its run's time limit after %s records; continuing in a new task",
            batch_id,
            batch.records_read,
        )
        enqueue_on_commit(import_batch_process, batch_id)
        return
    except Exception as exc:
        # The pipeline reports file errors in the batch itself; anything else must not leave it "running" forever.
        import_batch_fail(batch_id=batch_id, error=f"{batch.file_name}: the import stopped: {exc}")
        raise
    if batch.status in (ImportStatus.DONE, ImportStatus.DONE_WITH_REJECTIONS):
        upload_discard(batch=batch)


@shared_task(name="sessions.tasks.import_batches_sweep", ignore_result=True, soft_time_limit=60, time_limit=90)
def import_batches_sweep_task() -> None:
    """Beat: requeue or fail imports whose worker stopped reporting (sessions.imports.runs)."""
    import_batches_sweep(
        process=import_batch_process,
        stale_seconds=settings.IMPORT_STALE_SECONDS,
        max_attempts=settings.IMPORT_MAX_ATTEMPTS,
    )
