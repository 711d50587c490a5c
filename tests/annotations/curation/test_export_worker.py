"""A large export from the browser runs in a real Celery worker: the job goes queued → done with its progress, and
the file it wrote downloads."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.urls import reverse

from annotations.curation import services
from annotations.curation.models import ExportJob, ExportStatus
from tests.annotations.curation.conftest import approve, make_reply
from tests.integration.worker import celery_worker  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_until_finished(job: ExportJob, worker, timeout: float = 120.0) -> ExportJob:
    deadline = time.monotonic() + timeout
    while True:
        job.refresh_from_db()
        if job.finished:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"export job {job.pk} still {job.status}; worker output:\n{worker.output()}")
        time.sleep(0.2)


def test_a_large_export_is_written_by_the_worker(celery_worker, client, expert, settings):  # noqa: F811
    settings.CURATION_STREAM_MAX_EXAMPLES = 2  # this process decides; the worker only runs the job
    dataset = services.dataset_create(actor=expert, name="Worker export")
    ids = [approve(make_reply(question=f"Question {i}?", history=0), expert).pk for i in range(3)]
    services.examples_add(actor=expert, dataset=dataset, correction_ids=ids)
    for example in dataset.examples.all():
        services.example_review(actor=expert, example_id=example.pk, decision="approve")

    client.force_login(expert)
    response = client.post(reverse("curation:export", args=[dataset.slug]), {"format": "openai"})
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    job = wait_until_finished(job, celery_worker)
    try:
        assert (job.status, job.total, job.done) == (ExportStatus.DONE, 3, 3), job.error
        download = client.get(reverse("curation:export_download", args=[job.pk]))
        rows = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
        assert [row["messages"][1]["content"] for row in rows] == ["Question 0?", "Question 1?", "Question 2?"]
        assert job.base_url == "http://testserver/"
    finally:
        Path(job.path).unlink(missing_ok=True)
