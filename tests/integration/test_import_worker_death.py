"""A real worker killed (SIGKILL) in the middle of a big import, then a new worker: the import finishes, resumed
after its last committed chunk, with no duplicate conversation or turn and a report that counts each record once.

The sweeper is run here with a zero staleness threshold (the killed worker is known dead), so the import is requeued
at once instead of after IMPORT_STALE_SECONDS or Redis's visibility timeout.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import orjson
import pytest

from feedbackhub import outbox
from sessions import tasks
from sessions.imports import runs
from sessions.models import Conversation, ImportStatus, Turn
from sessions.services import import_batch_create
from tests.integration import worker as integration
from tests.integration.worker import wait_until_finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RECORDS = 40_000


def _record(i: int) -> bytes:
    return orjson.dumps({
        "id": f"big-{i}",
        "user": {"id": f"u{i % 97}", "role": "customer"},
        "environment": "prod",
        "model_version": "m-1",
        "started_at": "2026-05-01T10:00:00Z",
        "turns": [
            {"role": "user", "content": f"Question {i}: where is my card?", "created_at": "2026-05-01T10:00:00Z"},
            {"role": "assistant", "content": f"Answer {i}: it is on its way.", "created_at": "2026-05-01T10:00:02Z"},
        ],
    })  # fmt: skip


def _wait_for(what: str, check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen in {timeout} s; worker output:\n{integration._worker.output()}")
        time.sleep(0.05)
    return result


def test_an_import_whose_worker_was_killed_finishes_on_a_new_worker_with_exact_counts(worker_uploads):
    folder = worker_uploads / uuid.uuid4().hex
    folder.mkdir()
    path = folder / "big.jsonl"
    with path.open("wb") as fh:
        for i in range(RECORDS):
            fh.write(_record(i) + b"\n")
    batch = import_batch_create(
        file_name=path.name, source="big", stored_path=str(path), total_bytes=path.stat().st_size
    )
    assert outbox.send(tasks.import_batch_process, (batch.pk,))

    def first_chunk_committed() -> bool:
        batch.refresh_from_db()
        assert batch.status in (ImportStatus.QUEUED, ImportStatus.RUNNING), "finished before it could be killed"
        return batch.records_read > 0

    _wait_for("the first committed chunk", first_chunk_committed)
    victim = integration._worker
    os.kill(victim.proc.pid, signal.SIGSTOP)  # frozen mid-import: nothing more commits from here
    victim.kill()
    batch.refresh_from_db()
    killed_at = batch.records_read
    assert batch.status == ImportStatus.RUNNING and 0 < killed_at < RECORDS
    assert Conversation.objects.filter(source="big").count() == batch.conversations_created == killed_at

    integration.restart_worker()

    def swept() -> bool:
        # The killed worker's database session may hold the batch row until PostgreSQL sees it gone (the sweeper
        # skips locked rows), so sweep until it is requeued.
        requeued, failed = runs.import_batches_sweep(
            process=tasks.import_batch_process, stale_seconds=0, max_attempts=5
        )
        assert failed == []
        return requeued == [batch.pk]

    _wait_for("the sweeper's requeue", swept, timeout=60)

    batch = wait_until_finished(batch, timeout=300)
    assert batch.status == ImportStatus.DONE, batch.error
    assert batch.attempts == 2
    assert (
        batch.records_read,
        batch.conversations_created,
        batch.conversations_updated,
        batch.conversations_unchanged,
        batch.records_rejected,
    ) == (RECORDS, RECORDS, 0, 0, 0)
    assert batch.turns_written == 2 * RECORDS and batch.bytes_read == batch.total_bytes
    assert Conversation.objects.filter(source="big").count() == RECORDS
    assert Turn.objects.filter(conversation__source="big").count() == 2 * RECORDS
    assert not path.exists()  # the upload goes once the import is done
    print(f"killed after {killed_at} of {RECORDS} records; resumed and finished")  # noqa: T201
