"""Uploaded import files: streamed to ``IMPORT_UPLOAD_DIR`` while hashed, queued as an import batch, then removed.

A file is removed when its import is done, at once when the upload is refused, and otherwise once abandoned
(``abandoned_uploads_remove``): a failed import's file after ``IMPORT_FAILED_UPLOAD_HOURS`` (it is kept that long
so the import can be retried), and a file no import refers to (a request that died mid-upload) after the same time.

The upload handler writes each chunk of the request body straight to its final file (no temporary copy, never the
whole file in memory) and computes the sha256 and size on the way. Services here are the writes around an upload:
queue it as a batch (the Celery task runs it after commit), mark a batch failed, discard a stored file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers, StopUpload
from django.db import transaction
from django.utils import timezone

from sessions.models import ImportBatch, ImportStatus
from sessions.services import import_batch_create

logger = logging.getLogger(__name__)

UPLOAD_FIELD = "file"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def upload_dir() -> Path:
    path = Path(settings.IMPORT_UPLOAD_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_file_name(name: str) -> str:
    """The base name of an uploaded file, reduced to characters safe on any file system (at most 120)."""
    base = os.path.basename(name.replace("\\", "/")).strip()
    return (_UNSAFE.sub("_", base).strip("._") or "upload")[-120:]


class StoredUpload(UploadedFile):
    """An uploaded file already in its final place, with its sha256 and size."""

    def __init__(self, *, path: Path, name: str, content_type: str | None, size: int, sha256: str) -> None:
        super().__init__(file=None, name=name, content_type=content_type, size=size)
        self.path = path
        self.sha256 = sha256

    def open(self, mode: str = "rb"):  # noqa: A003  (the UploadedFile API)
        self.file = open(self.path, mode)  # noqa: SIM115 (closed by the caller, as File.open's contract says)
        return self

    def temporary_file_path(self) -> str:
        return str(self.path)


class StreamingHashUploadHandler(FileUploadHandler):
    """Stream the ``file`` field to ``IMPORT_UPLOAD_DIR`` chunk by chunk, hashing it; stop at the size limit.

    ``too_large`` is set (and the upload stopped and removed) when the file passes ``IMPORT_MAX_FILE_BYTES``, so
    the view can say so instead of reporting a missing file.
    """

    chunk_size = 1024 * 1024

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.too_large = False
        self.max_bytes = settings.IMPORT_MAX_FILE_BYTES
        self._fh = None
        self._path: Path | None = None
        self.stored_one = False
        self.extra_parts = 0

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        if field_name != UPLOAD_FIELD:
            return  # another handler takes other file fields
        if self.stored_one:
            # One file per import: a second ``file`` part is never written (the view refuses the request).
            self.extra_parts += 1
            return
        # One folder per upload keeps the file's own name, which the import's error messages then show.
        folder = upload_dir() / uuid.uuid4().hex
        folder.mkdir(mode=0o700)
        self._path = folder / safe_file_name(file_name)
        self.stored_one = True
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._fh = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0
        raise StopFutureHandlers

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if self._fh is None:
            return raw_data
        self._size += len(raw_data)
        if self._size > self.max_bytes:
            self.too_large = True
            self._discard()
            raise StopUpload(connection_reset=False)
        self._fh.write(raw_data)
        self._hash.update(raw_data)
        return None

    def file_complete(self, file_size: int) -> StoredUpload | None:
        if self._fh is None or self._path is None:
            return None
        self._fh.close()
        self._fh = None
        stored = StoredUpload(
            path=self._path,
            name=self.file_name,
            content_type=self.content_type,
            size=self._size,
            sha256=self._hash.hexdigest(),
        )
        self._path = None
        return stored

    def upload_interrupted(self) -> None:
        self._discard()

    def _discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._path is not None:
            remove_stored_file(self._path)
            self._path = None


def remove_stored_file(path: Path) -> bool:
    """Delete an uploaded file and its folder, only ever inside ``IMPORT_UPLOAD_DIR``; True when it was there."""
    path = Path(path)
    if path.resolve().parent.parent != Path(settings.IMPORT_UPLOAD_DIR).resolve():
        logger.warning("not deleting %s: outside IMPORT_UPLOAD_DIR", path)
        return False
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()
    return True


# --- Services -----------------------------------------------------------------------------------------------------


@transaction.atomic
def upload_import_batch_create(
    *,
    upload: StoredUpload,
    source: str,
    format: str | None,
    user: AbstractBaseUser | None,  # noqa: A002
) -> ImportBatch:
    """Create a QUEUED batch for a stored upload (the caller enqueues ``tasks.import_batch_process`` on commit)."""
    batch = import_batch_create(
        file_name=upload.name or upload.path.name,
        source=source,
        format=format or None,
        user=user,
        stored_path=str(upload.path),
        total_bytes=upload.size,
    )
    if batch.sha256 != upload.sha256:
        batch.sha256 = upload.sha256
        batch.save(update_fields=["sha256"])
    return batch


@transaction.atomic
def import_batch_fail(*, batch_id: int, error: str) -> None:
    """Mark an unfinished batch FAILED (the worker hit an error outside the pipeline's own reporting)."""
    ImportBatch.objects.filter(pk=batch_id, status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING]).update(
        status=ImportStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def upload_discard(*, batch: ImportBatch) -> None:
    """Remove a batch's stored upload once it has been imported, and forget its path."""
    if not batch.stored_path:
        return
    remove_stored_file(Path(batch.stored_path))
    ImportBatch.objects.filter(pk=batch.pk).update(stored_path="")
    batch.stored_path = ""


def abandoned_uploads_remove(*, older_than: timedelta | None = None) -> int:
    """Remove abandoned upload files (see the module docstring); returns how many files were removed."""
    if older_than is None:
        older_than = timedelta(hours=settings.IMPORT_FAILED_UPLOAD_HOURS)
    removed = 0
    cutoff = timezone.now() - older_than
    failed = ImportBatch.objects.filter(status=ImportStatus.FAILED, finished_at__lt=cutoff).exclude(stored_path="")
    for batch in failed:
        removed += Path(batch.stored_path).is_file()
        upload_discard(batch=batch)
    root = upload_dir()
    in_use = ImportBatch.objects.exclude(stored_path="").values_list("stored_path", flat=True)
    referenced = {Path(path).parent.name for path in in_use}
    oldest_mtime = time.time() - older_than.total_seconds()
    for folder in root.iterdir():
        if not folder.is_dir() or folder.name in referenced or folder.stat().st_mtime > oldest_mtime:
            continue
        removed += sum(1 for child in folder.iterdir() if child.is_file())
        shutil.rmtree(folder, ignore_errors=True)
    return removed
