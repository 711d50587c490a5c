"""Upload through Django -> the task goes through Redis -> a real `celery worker` process imports the file."""

import json
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from sessions.models import Conversation, FeedbackEvent, ImportBatch, ImportStatus, Turn
from tests.integration.worker import wait_until_finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _record(i: int) -> dict:
    return {
        "id": f"support-{i}",
        "user": {"id": f"u{i % 7}", "role": "retail_customer"},
        "environment": "prod",
        "model_version": "gpt-4o-mini",
        "app_version": "3.5.1",
        "started_at": "2026-05-01T10:00:00Z",
        "turns": [
            {"role": "user", "content": f"How do I reset my PIN ({i})?", "created_at": "2026-05-01T10:00:00Z"},
            {"role": "assistant", "content": "Open Cards > PIN in the app.", "created_at": "2026-05-01T10:00:02Z",
             "latency_ms": 900, "context": {"system_prompt": "You are a bank assistant."},
             "feedback": [{"id": f"fb-{i}", "type": "thumbs_down", "categories": ["too vague"],
                           "created_at": "2026-05-01T10:00:09Z"}]},
        ],
    }


def _upload(client, lines: list[str], name: str):
    content = ("\n".join(lines) + "\n").encode()
    response = client.post(reverse("conversations:import_list"),
                           {"file": SimpleUploadedFile(name, content), "source": "bank-bot"})
    assert response.status_code == 302, response.content[:2000]
    return ImportBatch.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))


def test_upload_is_imported_by_the_real_worker(moderator_client, worker_uploads):
    lines = [json.dumps(_record(i)) for i in range(40)]
    batch = wait_until_finished(_upload(moderator_client, lines, "bank.jsonl"))
    assert batch.status == ImportStatus.DONE, batch.error
    assert (batch.records_read, batch.conversations_created, batch.records_rejected) == (40, 40, 0)
    assert (batch.turns_written, batch.feedback_written) == (80, 40)
    assert batch.bytes_read == batch.total_bytes > 0 and batch.format == "native"
    assert Conversation.objects.filter(source="bank-bot").count() == 40
    assert Turn.objects.count() == 80 and FeedbackEvent.objects.count() == 40
    # The worker discards the upload right after it marks the batch done.
    deadline = time.monotonic() + 30
    while batch.stored_path and time.monotonic() < deadline:
        time.sleep(0.1)
        batch.refresh_from_db()
    assert batch.stored_path == "" and not [p for p in Path(worker_uploads).rglob("*") if p.is_file()]

    page = moderator_client.get(batch.get_absolute_url()).content.decode()
    status = page[page.index('<section id="import-status"'):]
    assert 'data-count="created">40<' in page
    assert "hx-trigger" not in status[:status.index("</section>")]  # finished: the status stops polling

    # The same file again: nothing new, nothing lost.
    again = wait_until_finished(_upload(moderator_client, lines, "bank.jsonl"))
    assert (again.status, again.conversations_created, again.conversations_unchanged) == (ImportStatus.DONE, 0, 40)
    assert Conversation.objects.count() == 40 and Turn.objects.count() == 80


def test_bad_records_are_reported_by_line_and_the_good_ones_imported(moderator_client, worker_uploads):
    bad_role = _record(3)
    bad_role["turns"][0]["role"] = "wizard"
    lines = [
        json.dumps(_record(1)),
        '{"id": "broken", "turns": [',  # line 2: not JSON
        json.dumps(bad_role),  # line 3: an unknown turn role
        json.dumps(_record(4)),
        json.dumps({**_record(5), "environment": "<script>alert(1)</script>"}),  # line 5: unknown environment
    ]
    batch = wait_until_finished(_upload(moderator_client, lines, "mixed.jsonl"))
    assert batch.status == ImportStatus.DONE_WITH_REJECTIONS, batch.error
    assert (batch.conversations_created, batch.records_rejected) == (2, 3)
    assert set(Conversation.objects.values_list("external_id", flat=True)) == {"support-1", "support-4"}
    rejections = list(batch.rejections.order_by("line").values_list("line", "field"))
    assert [line for line, _ in rejections] == [2, 3, 5]
    assert "role" in rejections[1][1] and "environment" in rejections[2][1]
    # The failed run keeps its upload only when the whole file failed; a partial import still cleans up.
    assert batch.stored_path == ""

    page = moderator_client.get(batch.get_absolute_url()).content.decode()
    assert "Rejected records" in page and "<script>alert(1)" not in page and "&lt;script&gt;" in page
