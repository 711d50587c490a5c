"""Writes for conversation logs. Imports: create a batch, run it (streaming, idempotent), or both at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sessions import events
from sessions.imports import pipeline
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
    *, batch: ImportBatch, path: Path, progress: Callable[[ImportBatch], None] | None = None
) -> ImportBatch:
    """Import the file at ``path`` into ``batch`` and return the batch, finished.

    Not atomic as a whole on purpose: each chunk of conversations commits on its own, so a file that fails half way
    keeps what went in before the failure and a browser sees progress. The batch row is updated after every chunk
    (well within half a second) and ``progress(batch)`` is called about every 0.5 s. Bad input never raises: a bad
    record becomes an ImportRejection (status DONE_WITH_REJECTIONS), a bad file sets FAILED with ``batch.error``
    naming the file, the line and the problem.
    """
    path = Path(path)
    # Start from zero even when the batch ran before (a job redelivered after a worker died): the import is
    # idempotent, so a second run counts what the first stored as unchanged.
    batch.rejections.all().delete()
    for name in RUN_COUNTERS:
        setattr(batch, name, 0)
    batch.status = ImportStatus.RUNNING
    batch.started_at = timezone.now()
    batch.finished_at = None
    batch.error = ""
    batch.save(update_fields=["status", "started_at", "finished_at", "error", *RUN_COUNTERS])
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
            batch.sha256 = pipeline.run(batch, f, FORMATS[fmt], progress)
        batch.bytes_read = batch.total_bytes
        batch.status = ImportStatus.DONE_WITH_REJECTIONS if batch.records_rejected else ImportStatus.DONE
    except FileError as exc:
        batch.status = ImportStatus.FAILED
        batch.error = str(exc)
    except Exception as exc:  # recorded on the batch: an import never leaves a batch RUNNING
        logger.exception("import %s of %s failed", batch.pk, path)
        batch.status = ImportStatus.FAILED
        batch.error = f"{path.name}: the import stopped on an unexpected error: {type(exc).__name__}: {exc}"[:2000]
    batch.finished_at = timezone.now()
    batch.save()
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
