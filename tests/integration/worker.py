"""A real Celery worker process for integration tests, pointed at the pytest test database.

``celery_worker`` (module-scoped) starts ``celery -A feedbackhub worker --pool=solo`` as a subprocess with
``DATABASE_URL`` built from the test database settings and this run's ``REDIS_URL``, waits for its "ready" line,
and terminates it at the end. Tests using it need ``django_db(transaction=True)`` so the worker sees their rows
(and ``live_server`` with transaction=True uses the same test database). Import the fixture where it is needed;
one worker serves each module that uses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from feedbackhub import outbox

READY_TIMEOUT_SECONDS = 90


def database_url() -> str:
    """The URL of the database Django is using now (inside a test: the test database)."""
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{quote(db['NAME'], safe='')}"


class Worker:
    def __init__(self, upload_dir: Path) -> None:
        self.upload_dir = upload_dir
        self.lines: list[str] = []
        self._ready = threading.Event()
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "IMPORT_UPLOAD_DIR": str(upload_dir),
            "DJANGO_SETTINGS_MODULE": "feedbackhub.settings",
            "PYTHONUNBUFFERED": "1",
        }
        celery = Path(sys.executable).with_name("celery")
        self.proc = subprocess.Popen(
            [str(celery), "-A", "feedbackhub", "worker", "--pool=solo", "--concurrency=1",
             "-Q", ",".join(settings.WORKER_QUEUES), "--loglevel=INFO", "--without-gossip", "--without-mingle",
             "-n", f"integration-{os.getpid()}@%h"],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if " ready." in line:
                self._ready.set()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited (rc={self.proc.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker was not ready in time:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(self.lines[-200:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # warm shutdown: finishes the current task, then exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


    def kill(self) -> None:
        """Stop the worker the way a crash or an OOM kill does: SIGKILL, no shutdown, nothing acknowledged."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_worker: Worker | None = None


def restart_worker() -> Worker:
    """Kill the module's worker (if it still runs) and start a new one on the same database, Redis and uploads; the
    fixture's teardown stops the new one."""
    global _worker
    assert _worker is not None, "restart_worker needs the celery_worker fixture"
    _worker.kill()
    _worker = Worker(_worker.upload_dir)
    _worker.wait_ready()
    return _worker


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Worker]:
    """A real worker for the test module, on the test database and this run's Redis database. Stopped when the module
    ends, so it never runs tasks that later modules' tests send (into a database their teardown is flushing)."""
    global _worker
    if _worker is None or _worker.proc.poll() is not None:
        # Tasks earlier tests sent with no worker running (and their coalescing marks): a new worker starts from an
        # empty queue of this run's own Redis database.
        outbox.purge()
        with django_db_blocker.unblock():
            _worker = Worker(tmp_path_factory.mktemp("worker-uploads"))
        try:
            _worker.wait_ready()
        except BaseException:
            # A worker that never got ready must not live on and take later runs' tasks.
            _worker.stop()
            _worker = None
            raise
    yield _worker
    # Stopped before django_db_setup drops the test database (the worker holds a connection to it).
    if _worker is not None:
        _worker.stop()
        _worker = None


@pytest.fixture
def worker_uploads(celery_worker: Worker, settings) -> Path:
    """Make this process store uploads where the worker reads them."""
    settings.IMPORT_UPLOAD_DIR = celery_worker.upload_dir
    return celery_worker.upload_dir


def wait_for(what: str, condition, worker: Worker, timeout: float = 240.0) -> None:
    """Poll ``condition()`` until it holds (or fail naming ``what``, with the worker's output)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; worker output:\n{worker.output()}")
        time.sleep(0.02)


def wait_until_finished(batch, timeout: float = 120.0):
    """Reload ``batch`` until the worker has finished it (or fail with the worker's output)."""
    from sessions.models import ImportStatus  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while True:
        batch.refresh_from_db()
        if batch.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
            return batch
        if time.monotonic() > deadline:
            worker = _worker.output() if _worker else "(no worker)"
            pytest.fail(f"import batch {batch.pk} still {batch.status}; worker output:\n{worker}")
        time.sleep(0.2)


def wait_idle(timeout: float = 60.0) -> None:
    """Wait until the worker has no queued, reserved or running task: follow-up tasks (embedding, rollups) must not
    write to the test database while the test's teardown flushes it."""
    import redis  # noqa: PLC0415

    from feedbackhub.celery import app  # noqa: PLC0415

    if _worker is None or _worker.proc.poll() is not None:
        return
    client = redis.Redis.from_url(settings.REDIS_URL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inspect = app.control.inspect(timeout=1.0)
        busy = [t for tasks in (inspect.active() or {}).values() for t in tasks]
        busy += [t for tasks in (inspect.reserved() or {}).values() for t in tasks]
        if not busy and not any(client.llen(q) for q in settings.WORKER_QUEUES):
            return
        time.sleep(0.5)


@pytest.fixture(autouse=True)
def _worker_idle_before_teardown(transactional_db):
    # Depends on transactional_db so that it is torn down first: the wait happens before the flush.
    yield
    wait_idle()
