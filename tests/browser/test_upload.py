"""In chromium: upload a file on the Imports page, watch the job's progress end in the final report.

The live server and the real Celery worker share the test database (transactional test, see tests/integration).
"""

import json
import re

import pytest
from playwright.sync_api import expect

from sessions.models import Conversation, ImportBatch, ImportStatus
from tests.browser.conftest import login
from tests.integration.worker import celery_worker, worker_uploads  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_uploads"),
]


def _lines(count: int) -> list[str]:
    lines = []
    for i in range(count):
        lines.append(json.dumps({
            "id": f"trip-{i}",
            "user": {"id": f"t{i}", "role": "traveller"},
            "environment": "test",
            "model_version": "claude-3-5-haiku",
            "started_at": "2026-07-01T09:00:00Z",
            "turns": [
                {"role": "user", "content": f"Flights to Tallinn on day {i}?"},
                {"role": "assistant", "content": "<img src=x onerror=alert(1)> Two options: 07:40 or 10:05.",
                 "feedback": [{"type": "rating", "rating": 2}]},
            ],
        }))
    lines.insert(3, '{"id": "cut-off", "turns": [')  # line 4 is broken
    return lines


def test_upload_shows_progress_then_the_report(page, live_server, moderator, tmp_path):
    path = tmp_path / "trips.jsonl"
    path.write_text("\n".join(_lines(30)) + "\n", encoding="utf-8")

    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/conversations/imports/")
    page.get_by_label("Log file", exact=True).set_input_files(str(path))
    page.get_by_label("Source name", exact=True).fill("travel-bot")
    page.get_by_role("button", name="Upload and import").click()

    page.wait_for_url(re.compile(r"/conversations/imports/\d+/$"))
    expect(page.get_by_role("heading", name=re.compile("Import of"))).to_contain_text("trips.jsonl")
    expect(page.locator("#import-status progress")).to_be_visible()
    # htmx polls the status fragment every second until the worker has finished; then the report replaces it.
    report = page.locator("#import-status .import-report")
    expect(report).to_be_visible(timeout=60_000)
    expect(page.locator("#import-status")).to_have_attribute("data-status", "partial")
    expect(page.locator("#import-status progress")).to_have_attribute("value", "100")
    expect(report.locator('[data-count="created"]')).to_have_text("30")
    expect(report.locator('[data-count="rejected"]')).to_have_text("1")
    expect(report.locator('[data-count="feedback"]')).to_have_text("30")
    rejected_row = report.locator("table.rejections tbody tr")
    expect(rejected_row).to_have_count(1)
    expect(rejected_row.locator("td").first).to_have_text("4")
    # Polling stopped: the finished fragment carries no trigger.
    assert page.locator("#import-status[hx-trigger]").count() == 0

    batch = ImportBatch.objects.get()
    assert batch.status == ImportStatus.DONE_WITH_REJECTIONS and batch.source == "travel-bot"
    assert Conversation.objects.filter(source="travel-bot").count() == 30

    page.get_by_role("link", name="← All imports").click()
    expect(page.locator("table.imports tbody tr")).to_have_count(1)
    expect(page.locator("table.imports")).to_contain_text("trips.jsonl")
