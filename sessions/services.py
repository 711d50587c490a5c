"""Writes for conversation logs. Imports: create a batch, run it (streaming, idempotent), or both at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sessions import events
from sessions.imports import pipeline, runs
from sessions.imports.errors import FileError
from sessions.imports.formats import FORMATS, detect_format
from sessions.imports.reader import ImportFile
from sessions.models import Conversation, ImportBatch, ImportStatus

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "import"
RUN_COUNTERS = [
    "bytes_read", "records_read", "conversations_created", "conversations_updated", "conversations_unchanged",
    "records_rejected", "turns_written", "feedback_written",
]  # fmt: skip


@transaction.atomic
def import_batch_create(
    *,
    file_name: str,
    source: str,
    format: str | None = None,  # noqa: A002 (the interface's name)
    user=None,  # noqa: ANN001
    stored_path: str = "",
    total_bytes: int = 0,
) -> ImportBatch:
    """Record a queued import of ``file_name`` into ``source``. ``format`` None (or "") means detect it when run."""
    if format and format not in FORMATS:
        raise ValueError(f"unknown import format {format!r}; one of {', '.join(FORMATS)}")
    return ImportBatch.objects.create(
        file_name=file_name[:500],
        source=(source or DEFAULT_SOURCE)[:100],
        format=format or "",
        created_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
        stored_path=stored_path,
        total_bytes=total_bytes,
    )


def import_batch_run(
    *,
    batch: ImportBatch,
    path: Path,
    progress: Callable[[ImportBatch], None] | None = None,
    interrupt: tuple[type[BaseException], ...] = (),
) -> ImportBatch:
    """Import the file at ``path`` into ``batch`` and return the batch, finished.

    Not atomic as a whole on purpose: each chunk of conversations commits on its own with the batch's counters, so
    a file that fails half way keeps what went in before the failure, a browser sees progress, and a run that was
    interrupted (a worker that died, a time limit) is **resumed**: a batch that has committed records already
    continues after them, keeping its counts and rejections, so each record is counted once
    (:mod:`sessions.imports.runs`). ``progress(batch)`` is called about every 0.5 s. Bad input never raises: a bad
    record becomes an ImportRejection (status DONE_WITH_REJECTIONS), a bad file sets FAILED with ``batch.error``
    naming the file, the line and the problem. An exception of a type in ``interrupt`` sends the batch back to the
    queue (to be resumed) and is raised again; a run that lost the batch to another stops without writing it.
    """
    path = Path(path)
    resume_after = batch.records_read
    if not resume_after:
        batch.rejections.all().delete()
        for name in RUN_COUNTERS:
            setattr(batch, name, 0)
        batch.started_at = timezone.now()
    elif batch.started_at is None:
        batch.started_at = timezone.now()
    batch.status = ImportStatus.RUNNING
    batch.finished_at = None
    batch.error = ""
    batch.heartbeat_at = timezone.now()
    batch.save(update_fields=["status", "started_at", "finished_at", "error", "heartbeat_at", *RUN_COUNTERS])
    if resume_after:
        logger.info("import %s resumes after %s records", batch.pk, resume_after)
    try:
        fmt = batch.format or detect_format(path)
        if fmt not in FORMATS:
            raise FileError(f"{path.name}: unknown format {fmt!r}; one of {', '.join(FORMATS)}")
        with ImportFile(
            path, max_file_bytes=settings.IMPORT_MAX_FILE_BYTES, max_line_bytes=settings.IMPORT_MAX_LINE_BYTES
        ) as f:
            batch.format = fmt
            batch.total_bytes = f.size
            batch.save(update_fields=["format", "total_bytes"])
            if progress is not None:
                progress(batch)
            batch.sha256 = pipeline.run(batch, f, FORMATS[fmt], progress, skip=resume_after)
        batch.bytes_read = batch.total_bytes
        batch.status = ImportStatus.DONE_WITH_REJECTIONS if batch.records_rejected else ImportStatus.DONE
    except runs.Superseded:
        logger.warning("import %s was taken over by another run; this one stops", batch.pk)
        return batch
    except interrupt:
        ImportBatch.objects.filter(pk=batch.pk, status=ImportStatus.RUNNING, attempts=batch.attempts).update(
            status=ImportStatus.QUEUED
        )
        raise
    except FileError as exc:
        batch.status = ImportStatus.FAILED
        batch.error = str(exc)
    except Exception as exc:  # recorded on the batch: an import never leaves a batch RUNNING
        logger.exception("import %s of %s failed", batch.pk, path)
        batch.status = ImportStatus.FAILED
        batch.error = f"{path.name}: the import stopped on an unexpected error: {type(exc).__name__}: {exc}"[:2000]
    batch.finished_at = timezone.now()
    try:
        with transaction.atomic():
            runs.import_batch_heartbeat(batch=batch)
            batch.save()
    except runs.Superseded:
        logger.warning("import %s was taken over by another run; its result is theirs to record", batch.pk)
        return batch
    if batch.conversations_created or batch.conversations_updated:
        events.conversations_imported.send(sender=ImportBatch, batch_id=batch.pk)
    if progress is not None:
        progress(batch)
    return batch


def import_file(
    *,
    path: Path,
    source: str,
    format: str | None = None,  # noqa: A002
    user=None,  # noqa: ANN001
    progress: Callable[[ImportBatch], None] | None = None,
) -> ImportBatch:
    """Create a batch for ``path`` and run it at once (the command line and the demo data use this)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    batch = import_batch_create(file_name=path.name, source=source, format=format, user=user, total_bytes=size)
    return import_batch_run(batch=batch, path=path, progress=progress)


def conversations_mark_reviewed(*, conversation_ids, at=None) -> int:
    """Record that reviewers started on these conversations (the first time only); returns how many changed.
    ``conversation_ids`` may be a list or a values_list queryset (then it is one UPDATE with a subquery)."""
    return Conversation.objects.filter(pk__in=conversation_ids, reviewed_at__isnull=True).update(
        reviewed_at=at or timezone.now()
    )
