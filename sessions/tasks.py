"""Celery tasks of the sessions app: thin adapters that take ids and call one service."""

from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task

from sessions.models import ImportBatch, ImportStatus
from sessions.services import import_batch_run
from sessions.uploads import import_batch_fail, upload_discard

logger = logging.getLogger(__name__)


@shared_task(name="sessions.tasks.import_batch_process", ignore_result=True, acks_late=True)
def import_batch_process(batch_id: int) -> None:
    """Import the uploaded file of batch ``batch_id``; on success its stored upload is deleted.

    Safe to deliver twice: a finished batch is left alone, and an interrupted one (RUNNING after a worker was lost)
    is run again, which the idempotent pipeline turns into updates rather than duplicates.
    """
    batch = ImportBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        logger.warning("import batch %s no longer exists", batch_id)
        return
    if batch.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
        logger.info("import batch %s is already %s", batch_id, batch.status)
        return
    if not batch.stored_path or not Path(batch.stored_path).is_file():
        import_batch_fail(batch_id=batch_id, error=f"{batch.file_name}: the uploaded file is no longer on the server")
        return
    try:
        batch = import_batch_run(batch=batch, path=Path(batch.stored_path))
    except Exception as exc:
        # The pipeline reports file errors in the batch itself; anything else must not leave it "running" forever.
        import_batch_fail(batch_id=batch_id, error=f"{batch.file_name}: the import stopped: {exc}")
        raise
    if batch.status in (ImportStatus.DONE, ImportStatus.DONE_WITH_REJECTIONS):
        upload_discard(batch=batch)
