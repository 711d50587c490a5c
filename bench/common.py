"""Shared plumbing for the benchmarks: their own databases, Django set-up, machine details, stats and output.

Every benchmark runs against databases of its own on the same PostgreSQL server as the app:

* ``feedbackhub_bench``: the million-session data set of the list benchmark, kept between runs;
* ``feedbackhub_bench_import``: emptied before every import run.

``BENCH_DATABASE_URL`` picks the server and the first database name explicitly; otherwise the server is the one
``DATABASE_URL`` names (or the embedded one) with the database name replaced, so a benchmark can never touch the
development database ``feedbackhub`` or a test database.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
DOCS_PATH = BASE_DIR / "docs" / "benchmarks.md"
# Generated input files and quick-run output live under the (git-ignored) data folder.
WORK_DIR = Path(os.environ.get("BENCH_WORK_DIR", BASE_DIR / ".data" / "bench")).resolve()

BENCH_DB_NAME = "feedbackhub_bench"
IMPORT_DB_SUFFIX = "_import"
QUICK_DB_SUFFIX = "_quick"
BENCH_REDIS_DB = 4


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_url(*, import_db: bool = False, quick: bool = False) -> str:
    """The URL of the list benchmark's database, or of the import benchmark's with ``import_db``.

    Quick (smoke) runs get databases of their own, so they never replace the full data set.
    """
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        url = explicit
    else:
        base = os.environ.get("DATABASE_URL")
        if not base:
            from feedbackhub import devstack  # noqa: PLC0415 (starts the embedded server only when needed)

            base = devstack.ensure_postgres()
        url = _with_database(base, BENCH_DB_NAME)
    name = urlsplit(url).path.lstrip("/")
    if import_db:
        name += IMPORT_DB_SUFFIX
    if quick:
        name += QUICK_DB_SUFFIX
    return _with_database(url, name)


def redis_url() -> str:
    explicit = os.environ.get("BENCH_REDIS_URL")
    if explicit:
        return explicit
    base = os.environ.get("REDIS_URL")
    if not base:
        from feedbackhub import devstack  # noqa: PLC0415

        base = devstack.ensure_redis()
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{BENCH_REDIS_DB}"))


def bench_environment(db_url: str) -> dict[str, str]:
    """Environment for a process that serves or imports as in production: DEBUG off, real middleware."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url(),
            # Production-like: no debug query log or debug templates. The test client's host must be allowed.
            "DEBUG": "0",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-not-a-secret",
            "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
            "SECURE_COOKIES": "0",
            # The test client speaks plain http: no redirect to https (a proxy terminates TLS in production).
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "PYTHONHASHSEED": "0",
        }
    )
    return env


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names when it is missing; True when it was created."""
    import psycopg  # noqa: PLC0415

    name = urlsplit(url).path.lstrip("/")
    admin_url = _with_database(url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def migrate(url: str) -> None:
    """Bring the database ``url`` up to the project's migrations (in a child process, so any URL works)."""
    ensure_database(url)
    subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--verbosity", "0", "--no-input"],
        env=bench_environment(url),
        cwd=BASE_DIR,
        check=True,
    )


def setup_django(db_url: str) -> None:
    """Configure this process for ``db_url`` and set Django up (call once, before importing models)."""
    os.environ.update(bench_environment(db_url))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackhub.settings")
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django  # noqa: PLC0415

    django.setup()


def collect_static() -> None:
    """Benchmarks render pages with DEBUG off, whose static URLs come from the collected files' manifest: collect
    them (a fresh checkout has none; later runs copy only what changed)."""
    from django.core.management import call_command  # noqa: PLC0415

    call_command("collectstatic", interactive=False, verbosity=0)


def serve_environment(db_url: str, work: Path) -> dict[str, str]:
    """``bench_environment`` for ``manage.py serve`` on this machine: static files and uploads under ``work``, no
    HSTS, no access log."""
    env = bench_environment(db_url)
    env.update({"STATIC_ROOT": str(work / "static"), "SECURE_HSTS_SECONDS": "0", "LOG_LEVEL": "WARNING",
                "ACCESS_LOG": "0", "IMPORT_UPLOAD_DIR": str(work / "uploads"), "PYTHONUNBUFFERED": "1"})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait for ``manage.py serve`` at ``url`` to answer /healthz/ready (RuntimeError if it exits or never does)."""
    import requests  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("manage.py serve exited before it was ready (see its log)")
        try:
            if requests.get(f"{url}/healthz/ready", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or its workers still loading the model
            pass
        time.sleep(1)
    raise RuntimeError("manage.py serve was not ready in time")


# --- stats -------------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: list[float]) -> float:
    return percentile(values, 50)


# --- machine -----------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


PG_SETTINGS = ("shared_buffers", "work_mem", "maintenance_work_mem", "max_wal_size", "synchronous_commit")


def postgres_details(url: str) -> tuple[str, str]:
    """The server's version and its memory/WAL settings; connects to its ``postgres`` database."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(_with_database(url, "postgres")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        settings = [f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}" for name in PG_SETTINGS]
    return (str(row[0]) if row else "unknown"), ", ".join(settings)


def machine_details(db_url: str) -> dict[str, Any]:
    load = os.getloadavg()
    pg_version, pg_settings = postgres_details(db_url)
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "django": __import__("django").get_version(),
        "git_commit": _git_commit(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": [round(x, 2) for x in load],
    }


# --- run context and output --------------------------------------------------------------------------------------


@dataclass
class Context:
    """What a benchmark needs to know about this run."""

    quick: bool = False
    repeats: int = 2
    results_dir: Path = RESULTS_DIR
    work_dir: Path = WORK_DIR
    notes: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def write_result(results_dir: Path, name: str, data: dict[str, Any]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_results(results_dir: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    if results_dir.is_dir():
        for path in sorted(results_dir.glob("*.json")):
            if path.stem == "machine":
                continue
            results[path.stem] = json.loads(path.read_text())
    return results
