"""``python manage.py serve``: the production web server (``make serve``, docs/deploy.md).

1. The database must be ready: reachable, pgvector recent enough, every migration applied. Migrations are a step of
   their own against an external database (``make migrate``, run once per release, before the new servers start);
   ``--migrate`` runs them here. With the embedded PostgreSQL (no DATABASE_URL) they run here anyway, as in
   ``make run``: nobody else shares that database.
2. ``check --deploy`` runs with the database checks; an error stops the start with its message.
3. ``collectstatic`` writes the hashed, compressed static files WhiteNoise serves.
4. The process becomes gunicorn (feedbackhub/gunicorn_conf.py): one master, WEB_CONCURRENCY sync workers, each
   loading the embedding model before it takes traffic.

Celery workers and beat run as their own processes (docs/deploy.md): ``celery -A feedbackhub worker -Q ...`` and
``celery -A feedbackhub beat``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from feedbackhub import devstack, health
from feedbackhub.management.commands.ensure_admin import credentials_path, describe, ensure_admin_login
from feedbackhub.management.commands.start import embedded_database

GUNICORN_CONF = settings.BASE_DIR / "feedbackhub" / "gunicorn_conf.py"


class Command(BaseCommand):
    help = "Run the production web server (gunicorn) after checking the database, deploy settings and static files."
    requires_system_checks: Sequence[str] = []  # run below, with the database checks

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=None, help="HOST:PORT (default 0.0.0.0:$PORT, PORT default 8000)")
        parser.add_argument("--workers", type=int, default=None, help="web worker processes (default: from CPUs)")
        parser.add_argument("--migrate", action="store_true", help="apply migrations first (one server only)")
        parser.add_argument("--check-only", action="store_true", help="run every step but the server, then exit")

    def _say(self, text: str) -> None:
        self.stdout.write(f"[serve] {text}")
        self.stdout.flush()

    def handle(self, *args, bind: str | None, workers: int | None, migrate: bool, check_only: bool, **opts) -> None:
        embedded = embedded_database()
        db = settings.DATABASES["default"]
        self._say(f"database {db['HOST']}:{db['PORT']}/{db['NAME']}{' (embedded)' if embedded else ''}; "
                  f"redis {settings.REDIS_URL.rsplit('@', 1)[-1]}")
        # Errors (pgvector missing or too old, a deploy setting) stop here with their message; warnings are shown.
        call_command("check", deploy=not settings.DEBUG, databases=["default"], fail_level="ERROR")
        if migrate or embedded:
            call_command("migrate", interactive=False, verbosity=1)
        elif health.migrations_pending():
            raise CommandError("The database is missing migrations of this release: run `make migrate` "
                               "(python manage.py migrate) once, then start the servers.")
        call_command("collectstatic", interactive=False, verbosity=0)
        self._say(f"static files collected into {settings.STATIC_ROOT}")
        if settings.SECURE_SSL_REDIRECT:
            self._say("plain http is redirected to https (SECURE_SSL_REDIRECT): serve behind the TLS proxy, or set "
                      "SECURE_SSL_REDIRECT=0 SECURE_COOKIES=0 on a private network (docs/deploy.md)")
        if embedded:
            self._say(f"admin login: {describe(ensure_admin_login(), credentials_path())}")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(devstack.DATA_DIR / "prometheus"))
        metrics_dir = env["PROMETHEUS_MULTIPROC_DIR"]
        # Totals start from zero with each server start (prometheus-client multiprocess mode).
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.makedirs(metrics_dir, exist_ok=True)
        argv = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF)]
        if bind:
            argv += ["--bind", bind]
        if workers:
            argv += ["--workers", str(workers)]
        if check_only:
            self._say("checks passed; would run: " + " ".join(argv))
            return
        connection.close()
        self._say("starting gunicorn: " + " ".join(argv[2:]))
        os.chdir(settings.BASE_DIR)
        os.execve(sys.executable, argv, env)  # noqa: S606 (our own argv; the server replaces this process)
