"""Triage with real processes: Redis, Celery workers and beat.

1. A worker killed during a clustering run (SIGKILL, between two committed batches) and restarted converges to the
   same clusters as one uninterrupted run.
2. End to end: an upload with negative feedback is imported, its feedback items embedded, beat sends the clustering
   job, and the queue shows a cluster per problem with exactly the right members.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotations.triage import job
from annotations.triage.models import Cluster, ClusterMember, Cursor
from sessions.models import ImportBatch, ImportStatus
from tests.annotations.triage.helpers import blob_vectors, current_partition, make_items
from tests.integration.worker import database_url, wait_until_finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

KILL_QUEUE = f"triage-kill-{os.getpid()}"
TIMEOUT = 240.0


class Process:
    """A celery worker or beat subprocess whose output is collected; ``ready`` is a line that says it started."""

    def __init__(self, args: list[str], extra_env: dict[str, str], ready: str) -> None:
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._marker = ready
        env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
               "DJANGO_SETTINGS_MODULE": "feedbackhub.settings", "PYTHONUNBUFFERED": "1", **extra_env}
        celery = Path(sys.executable).with_name("celery")
        self.proc = subprocess.Popen([str(celery), "-A", "feedbackhub", *args], cwd=settings.BASE_DIR, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._marker in line:
                self._ready.set()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"process did not start:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(self.lines[-150:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _kill_worker(extra_env: dict[str, str]) -> Process:
    worker = Process(["worker", "--pool=solo", "--concurrency=1", "-Q", KILL_QUEUE, "--loglevel=INFO",
                      "--without-gossip", "--without-mingle", "-n", f"triage-kill-{time.monotonic_ns()}@%h"],
                     extra_env, ready=" ready.")
    worker.wait_ready()
    return worker


def _wait(condition, what: str, *processes: Process, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n" + "\n---\n".join(p.output() for p in processes))
        time.sleep(0.1)


def test_worker_killed_mid_run_converges_to_the_same_clusters(settings):
    from annotations.triage.tasks import cluster_new

    vectors, _ = blob_vectors(4, 10, seed=51)
    make_items(vectors)
    total = len(vectors)
    slow = {"TRIAGE_BATCH_SIZE": "5", "TRIAGE_BATCH_PAUSE_SECONDS": "1.5"}
    worker = _kill_worker(slow)
    try:
        cluster_new.apply_async(queue=KILL_QUEUE)
        _wait(lambda: ClusterMember.objects.count() >= 5, "the first batch", worker)
        worker.stop(signal.SIGKILL)
    finally:
        worker.stop(signal.SIGKILL)
    interrupted_at = ClusterMember.objects.count()
    assert 0 < interrupted_at < total, "the worker was not killed mid-run"
    assert interrupted_at % 5 == 0  # only whole batches were committed

    worker = _kill_worker({"TRIAGE_BATCH_SIZE": "5"})
    try:
        cluster_new.apply_async(queue=KILL_QUEUE)
        _wait(lambda: ClusterMember.objects.count() == total, "the restarted run", worker)
        _wait(lambda: "succeeded" in worker.output(), "the task to finish", worker)
    finally:
        worker.stop()
    after_restart = current_partition()
    assert sum(Cluster.objects.values_list("size", flat=True)) == total

    # The same data clustered in one uninterrupted run, in this process.
    ClusterMember.objects.all().delete()
    Cluster.objects.all().delete()
    Cursor.objects.all().delete()
    settings.TRIAGE_BATCH_SIZE = 5
    assert job.triage_run().items == total
    assert current_partition() == after_restart
    assert len(after_restart) == 4


@pytest.fixture
def beat(tmp_path) -> Iterator[Process]:
    process = Process(["beat", "--schedule", str(tmp_path / "beat-schedule"), "--loglevel=INFO"],
                      {"TRIAGE_CLUSTER_INTERVAL": "2"}, ready="beat: Starting")
    process.wait_ready()
    yield process
    process.stop()


THEMES = {
    "refund": ("How long do I have to return order {i}?", "You have 90 days to return any item.",
               "Wrong: the return window is 30 days, not 90 days. Refund policy misquoted."),
    "tone": ("Can you check why my parcel {i} is late?", "Stop asking me, figure it out yourself.",
             "The assistant was rude and dismissive; unacceptable tone towards a customer."),
}


def _record(theme: str, i: int) -> dict:
    query, reply, complaint = THEMES[theme]
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": f"{theme}-{i}", "environment": "prod", "model_version": "gpt-4o-mini", "started_at": at,
        "turns": [
            {"role": "user", "content": query.format(i=1000 + i), "created_at": at},
            {"role": "assistant", "content": reply, "created_at": at,
             "feedback": [{"id": f"fb-{theme}-{i}", "type": "thumbs_down", "text": complaint, "created_at": at}]},
        ],
    }


def test_import_to_queue_end_to_end(moderator_client, worker_uploads, celery_worker, beat):
    lines = [json.dumps(_record("refund", i)) for i in range(6)] + [json.dumps(_record("tone", i)) for i in range(5)]
    response = moderator_client.post(reverse("conversations:import_list"), {
        "file": SimpleUploadedFile("complaints.jsonl", ("\n".join(lines) + "\n").encode()), "source": "shop-bot"})
    assert response.status_code == 302
    batch = ImportBatch.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert wait_until_finished(batch).status == ImportStatus.DONE

    # Items synced and embedded by the worker, then clustered when beat sends the job.
    _wait(lambda: ClusterMember.objects.count() == 11, "all 11 items to be clustered", beat, timeout=400)
    groups: dict[int, set[str]] = {}
    for cluster_id, external_id in ClusterMember.objects.values_list("cluster_id", "item__conversation__external_id"):
        groups.setdefault(cluster_id, set()).add(external_id)
    expected = {frozenset(f"refund-{i}" for i in range(6)), frozenset(f"tone-{i}" for i in range(5))}
    assert {frozenset(v) for v in groups.values()} == expected

    page = moderator_client.get(reverse("triage:queue")).content.decode()
    refund_cluster = next(pk for pk, ids in groups.items() if "refund-0" in ids)
    tone_cluster = next(pk for pk, ids in groups.items() if "tone-0" in ids)
    for pk in (refund_cluster, tone_cluster):
        assert f'data-cluster-id="{pk}"' in page
    # Six reports outrank five of the same age and severity.
    assert page.index(f'data-cluster-id="{refund_cluster}"') < page.index(f'data-cluster-id="{tone_cluster}"')
    detail = moderator_client.get(reverse("triage:cluster", args=[refund_cluster])).content.decode()
    assert detail.count('class="member-link"') == 6
    assert Cluster.objects.get(pk=refund_cluster).title != "Untitled cluster"
