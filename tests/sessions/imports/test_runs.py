"""Runs of an import: the claim, the sweeper of imports whose worker stopped reporting, and Retry on the page."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions import tasks
from sessions.imports import runs
from sessions.models import ImportBatch, ImportStatus
from sessions.services import import_batch_create
from tests.sessions.imports.conftest import conversation, jsonl

pytestmark = pytest.mark.django_db


def _batch(tmp_path, *, status: str, heartbeat_ago: float | None = None, attempts: int = 1) -> ImportBatch:
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl([conversation("c-1"), conversation("c-2")]))
    batch = import_batch_create(file_name="a.jsonl", source="s", stored_path=str(path), total_bytes=path.stat().st_size)
    batch.status = status
    batch.attempts = attempts
    batch.heartbeat_at = None if heartbeat_ago is None else timezone.now() - dt.timedelta(seconds=heartbeat_ago)
    batch.save()
    return batch


def test_a_run_claims_a_queued_or_stale_batch_but_not_a_live_one(tmp_path):
    queued = _batch(tmp_path, status=ImportStatus.QUEUED, attempts=0)
    claimed = runs.import_batch_claim(batch_id=queued.pk, stale_seconds=300)
    assert claimed is not None and (claimed.status, claimed.attempts) == (ImportStatus.RUNNING, 1)
    # The same message delivered again while that run reports: left alone.
    assert runs.import_batch_claim(batch_id=queued.pk, stale_seconds=300) is None
    stale = _batch(tmp_path, status=ImportStatus.RUNNING, heartbeat_ago=600)
    assert runs.import_batch_claim(batch_id=stale.pk, stale_seconds=300).attempts == 2
    done = _batch(tmp_path, status=ImportStatus.DONE)
    assert runs.import_batch_claim(batch_id=done.pk, stale_seconds=300) is None


def test_a_run_that_lost_its_batch_cannot_write_to_it(tmp_path):
    batch = runs.import_batch_claim(batch_id=_batch(tmp_path, status=ImportStatus.QUEUED).pk, stale_seconds=300)
    runs.import_batch_heartbeat(batch=batch)
    ImportBatch.objects.filter(pk=batch.pk).update(attempts=batch.attempts + 1)  # another run claimed it
    with pytest.raises(runs.Superseded):
        runs.import_batch_heartbeat(batch=batch)


def test_the_sweeper_requeues_stale_imports_and_fails_them_after_the_last_attempt(
    tmp_path, django_capture_on_commit_callbacks
):
    live = _batch(tmp_path, status=ImportStatus.RUNNING, heartbeat_ago=5)
    stale = _batch(tmp_path, status=ImportStatus.RUNNING, heartbeat_ago=600, attempts=2)
    worn = _batch(tmp_path, status=ImportStatus.RUNNING, heartbeat_ago=600, attempts=5)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        requeued, failed = runs.import_batches_sweep(
            process=tasks.import_batch_process, stale_seconds=300, max_attempts=5
        )
    assert (requeued, failed) == ([stale.pk], [worn.pk]) and len(sent) == 1
    live.refresh_from_db(), stale.refresh_from_db(), worn.refresh_from_db()
    assert (live.status, stale.status, worn.status) == (ImportStatus.RUNNING, ImportStatus.QUEUED, ImportStatus.FAILED)
    assert "stopped reporting" in worn.error and "Retry" in worn.error


def test_retry_on_the_page_queues_a_failed_import_again(moderator_client, tmp_path, django_capture_on_commit_callbacks):
    batch = _batch(tmp_path, status=ImportStatus.FAILED)
    page = moderator_client.get(batch.get_absolute_url()).content.decode()
    retry_url = reverse("conversations:import_retry", args=[batch.pk])
    assert f'hx-post="{retry_url}"' in page
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = moderator_client.post(retry_url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="import-status")
    assert response.status_code == 200 and len(sent) == 1
    body = response.content.decode()
    assert 'id="import-status"' in body and 'hx-trigger="every 1s"' in body and "<html" not in body
    batch.refresh_from_db()
    assert batch.status == ImportStatus.QUEUED and batch.error == ""


def test_retry_of_a_finished_import_is_refused_in_the_status_area(moderator_client, tmp_path):
    batch = _batch(tmp_path, status=ImportStatus.DONE)
    retry_url = reverse("conversations:import_retry", args=[batch.pk])
    assert retry_url not in moderator_client.get(batch.get_absolute_url()).content.decode()
    response = moderator_client.post(retry_url, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and 'id="import-retry-error"' in response.content.decode()
    assert moderator_client.post(retry_url).status_code == 400
    assert moderator_client.get(retry_url).status_code == 405
    batch.refresh_from_db()
    assert batch.status == ImportStatus.DONE


def test_the_task_resumes_a_redelivered_import_without_counting_twice(tmp_path, tasks_run_here):
    path = tmp_path / "b.jsonl"
    path.write_bytes(jsonl([conversation(f"c-{i}") for i in range(4)]))
    batch = import_batch_create(file_name="b.jsonl", source="s", stored_path=str(path), total_bytes=1)
    tasks.import_batch_process(batch.pk)
    batch.refresh_from_db()
    assert (batch.status, batch.conversations_created, batch.attempts) == (ImportStatus.DONE, 4, 1)
    tasks.import_batch_process(batch.pk)  # a duplicate delivery after it finished
    batch.refresh_from_db()
    assert (batch.records_read, batch.conversations_created, batch.conversations_unchanged) == (4, 4, 0)
    assert batch.attempts == 1
