"""``python manage.py start [--port 8000]``: what ``make run`` runs.

1. The embedded PostgreSQL and Redis are already up: settings start them (or reuse running ones) on import.
2. ``migrate``; the demo set is loaded when the database is empty (first start only).
3. The admin login is ensured (password generated once into ``.data/admin-login.txt``) and printed with the URL.
4. The web server, a Celery worker and Celery beat run under one supervisor (honcho's Manager, in-process):
   their output is multiplexed with a name prefix; Ctrl-C or SIGTERM stops every child (each runs in its own
   process group, so the runserver reloader and the worker's pool processes stop too); a child that dies is
   reported and the others are stopped.
5. Then the embedded PostgreSQL and Redis are stopped, if this command started them. Services that were already
   running (another ``make run``, ``make services`` or a test run using them) are left running.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from honcho.manager import Manager

from feedbackhub import devstack
from feedbackhub.demo import seeding
from feedbackhub.management.commands.ensure_admin import credentials_path, describe, ensure_admin_login

# --- Embedded services: did this process start them? -------------------------------------------------------------


def _proc_start_time(pid: int) -> float | None:
    """Wall-clock start time of a local process, from Linux /proc; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            # Field 22 (starttime, in clock ticks since boot); the command name in field 2 may contain spaces.
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_started_at() -> float:
    """When this process started; now when unknown, so that every running service then counts as pre-existing."""
    started = _proc_start_time(os.getpid())
    return time.time() if started is None else started


def embedded_database() -> bool:
    db = settings.DATABASES["default"]
    return str(db.get("HOST")) == devstack.HOST and int(db.get("PORT") or 0) == devstack.PG_PORT


def embedded_redis() -> bool:
    return settings.REDIS_URL.startswith(f"redis://{devstack.HOST}:{devstack.REDIS_PORT}")


def postgres_started_at() -> float | None:
    # The same clock as process_started_at(): /proc, for the postmaster's pid (first line of postmaster.pid).
    try:
        pid = int((devstack.pg_dir() / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return _proc_start_time(pid)


def redis_started_at() -> float | None:
    info = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).info("server")
    # Redis reports its uptime in whole seconds only; the embedded server runs on this machine, so ask /proc.
    return _proc_start_time(int(info["process_id"]))


@dataclass
class OwnedServices:
    """Which embedded services this process started (and so stops on the way out)."""

    postgres: bool = False
    redis: bool = False

    @classmethod
    def detect(cls, *, since: float) -> OwnedServices:
        # When in doubt a service counts as someone else's: it is then left running, which `make stop` fixes,
        # rather than stopped under another user of it.
        owned = cls()
        if embedded_database():
            started = postgres_started_at()
            owned.postgres = started is not None and started >= since
        if embedded_redis():
            started = redis_started_at()
            owned.redis = started is not None and started >= since
        return owned

    def stop(self, write) -> None:
        connection.close()
        if self.postgres:
            write("stopping the embedded PostgreSQL")
            devstack.stop_postgres()
        if self.redis:
            write("stopping the embedded Redis")
            devstack.stop_redis()
        if not (self.postgres or self.redis) and (embedded_database() or embedded_redis()):
            write("the embedded PostgreSQL/Redis were already running before this start: left running "
                  "(`make stop` stops them)")


# --- Supervisor -----------------------------------------------------------------------------------------------------


class Supervisor(Manager):
    """honcho's Manager, remembering which child died on its own (rather than being stopped by us)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.died: list[tuple[str, int]] = []

    def terminate(self) -> None:
        if not self._terminating:
            # Called either from the signal handler (no child has stopped yet) or because a child exited.
            self.died = [(name, p["returncode"]) for name, p in self._processes.items() if "returncode" in p]
            for name, rc in self.died:
                others = ", ".join(n for n in self._processes if n != name) or "nothing else"
                self._system_print(f"!! {name} exited unexpectedly (rc={rc}); stopping {others}\n")
        super().terminate()


def child_commands(*, host: str, port: int, concurrency: int, reload: bool, python: str = sys.executable
                   ) -> dict[str, list[str]]:
    """The three children: web server, Celery worker, Celery beat (argv lists)."""
    manage = str(settings.BASE_DIR / "manage.py")
    web = [python, manage, "runserver", f"{host}:{port}"]
    if not reload:
        web.append("--noreload")
    return {
        "web": web,
        "worker": [python, "-m", "celery", "-A", "feedbackhub", "worker", "--loglevel=INFO",
                   f"--concurrency={concurrency}", "-Q", ",".join(settings.WORKER_QUEUES)],
        "beat": [python, "-m", "celery", "-A", "feedbackhub", "beat", "--loglevel=INFO"],
    }


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def seed_demo_if_empty(write) -> bool:
    """Load the demo set when nothing was ever imported; True when it was loaded."""
    if not seeding.database_is_empty():
        return False
    write("empty database: loading the demo conversations (first start only)")
    call_command("seed_demo")
    return True


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run FeedbackHub for development: services, migrations, demo data, admin login, web + worker + beat."
    requires_system_checks: Sequence[str] = []  # `migrate` runs the checks; runserver runs them again

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
        parser.add_argument("--host", default="127.0.0.1", help="address the web server binds (default %(default)s)")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes (default 2)")
        parser.add_argument("--noreload", action="store_true", help="run the web server without the autoreloader")
        parser.add_argument("--no-demo", action="store_true", help="do not load demo data into an empty database")
        parser.add_argument("--keep-services", action="store_true",
                            help="leave the embedded PostgreSQL and Redis running on exit")

    def _say(self, text: str) -> None:
        self.stdout.write(f"[start] {text}")
        self.stdout.flush()

    def handle(self, *args, port: int, host: str, concurrency: int, noreload: bool, no_demo: bool,
               keep_services: bool, **options) -> None:
        began = process_started_at()
        # Until the supervisor installs its own handlers, SIGTERM stops setup the way Ctrl-C does.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        if not port_free(host, port):
            raise CommandError(f"Port {port} on {host} is in use (another `make run`?). Pick one: PORT=8001 make run")
        owned = OwnedServices.detect(since=began)
        db = settings.DATABASES["default"]
        self._say(f"PostgreSQL {db['HOST']}:{db['PORT']}/{db['NAME']}"
                  f"{' (started now)' if owned.postgres else ''}; Redis {settings.REDIS_URL}"
                  f"{' (started now)' if owned.redis else ''}")
        rc = 0
        try:
            call_command("migrate", interactive=False, verbosity=1)
            if not no_demo:
                seed_demo_if_empty(self._say)
            login = ensure_admin_login()
            connection.close()  # the children open their own; none is inherited by the supervisor's helpers
            rc = self._supervise(host=host, port=port, concurrency=concurrency, reload=not noreload, login=login)
        except KeyboardInterrupt:
            self._say("interrupted")
            rc = 130
        finally:
            if not keep_services:
                owned.stop(self._say)
        if rc:
            raise SystemExit(rc)

    def _supervise(self, *, host: str, port: int, concurrency: int, reload: bool, login) -> int:
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"  # noqa: S104
        banner = [
            "",
            "=" * 78,
            f"  FeedbackHub: {url}",
            f"  Admin login: {describe(login, credentials_path())}",
            "  Ctrl-C stops the web server, the worker, beat and the embedded services.",
            "=" * 78,
            "",
        ]
        self.stdout.write("\n".join(banner))
        self.stdout.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        manager = Supervisor()
        for name, argv in child_commands(host=host, port=port, concurrency=concurrency, reload=reload).items():
            # honcho runs each command through `sh -c` in a new session; exec keeps the pid the child's own.
            manager.add_process(name, "exec " + shlex.join(argv), env=env, cwd=str(settings.BASE_DIR))
        manager.loop()
        if manager.died:
            names = ", ".join(f"{n} (rc={rc})" for n, rc in manager.died)
            self._say(f"stopped because {names} exited unexpectedly; see its output above")
            return 1
        self._say("all processes stopped")
        return 0
