"""Abandoned upload files are removed: a second ``file`` part is never kept, and failed imports' files and files no
import refers to go once they are older than IMPORT_FAILED_UPLOAD_HOURS."""

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from sessions.imports.uploads import abandoned_uploads_remove
from sessions.models import ImportBatch, ImportStatus
from sessions.tasks import import_batch_process

pytestmark = pytest.mark.django_db

LIST_URL = reverse("conversations:import_list")
RECORD = (
    b'{"id": "c1", "started_at": "2026-05-01T10:00:00Z", "turns": [{"role": "user", "content": "Hi?"},'
    b' {"role": "assistant", "content": "Hello."}]}\n'
)


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path) -> Path:
    settings.IMPORT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.IMPORT_UPLOAD_DIR


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))
    os.utime(path.parent, (then, then))


def test_a_second_file_part_is_refused_and_nothing_is_kept(moderator_client, upload_dir):
    response = moderator_client.post(
        LIST_URL,
        {"file": [SimpleUploadedFile("a.jsonl", RECORD), SimpleUploadedFile("b.jsonl", RECORD)], "source": "bot"},
    )
    assert response.status_code == 400
    assert b"Send one file per import." in response.content
    assert _files(upload_dir) == [] and not ImportBatch.objects.exists()


def test_failed_imports_keep_their_file_for_a_retry_then_lose_it(
    moderator_client, upload_dir, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        moderator_client.post(LIST_URL, {"file": SimpleUploadedFile("notes.txt", b"not a log\n"), "source": "bot"})
    batch = ImportBatch.objects.get()
    import_batch_process(batch.pk)
    batch.refresh_from_db()
    assert batch.status == ImportStatus.FAILED
    stored = Path(batch.stored_path)

    assert abandoned_uploads_remove() == 0  # recent: kept so the import can be retried
    assert stored.exists()
    ImportBatch.objects.filter(pk=batch.pk).update(
        finished_at=timezone.now() - dt.timedelta(hours=settings.IMPORT_FAILED_UPLOAD_HOURS + 1)
    )
    assert abandoned_uploads_remove() == 1
    batch.refresh_from_db()
    assert not stored.exists() and batch.stored_path == "" and _files(upload_dir) == []


def test_files_no_import_refers_to_are_removed_once_old(
    moderator_client, upload_dir, settings, django_capture_on_commit_callbacks
):
    orphan = upload_dir / ("0" * 32) / "left-by-a-dead-request.jsonl"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(RECORD)
    with django_capture_on_commit_callbacks(execute=False):
        moderator_client.post(LIST_URL, {"file": SimpleUploadedFile("queued.jsonl", RECORD), "source": "bot"})
    queued = Path(ImportBatch.objects.get().stored_path)
    assert abandoned_uploads_remove() == 0  # the orphan is recent: maybe a request still uploading
    _age(orphan, settings.IMPORT_FAILED_UPLOAD_HOURS + 1)
    _age(queued, settings.IMPORT_FAILED_UPLOAD_HOURS + 1)
    call_command("remove_abandoned_uploads")
    assert _files(upload_dir) == [queued]  # a queued import's file stays, however old
