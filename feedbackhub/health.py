"""Liveness of the real parts: database, Redis, Celery worker and beat."""

from __future__ import annotations

import time

import redis
from celery.signals import before_task_publish
from django.conf import settings
from django.db import connection

BEAT_KEY = "feedbackhub:health:beat"
WORKER_KEY = "feedbackhub:health:worker"
HEARTBEAT_TASK = "feedbackhub.tasks.beat_heartbeat"
#: A heartbeat older than this means the process is gone (the beat interval is 15 s).
STALE_AFTER_SECONDS = 60


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def record_worker_heartbeat() -> None:
    _redis().set(WORKER_KEY, time.time())


@before_task_publish.connect
def _record_beat_heartbeat(sender: str | None = None, **kwargs) -> None:
    # Runs in the process that publishes; only beat publishes the heartbeat task.
    if sender == HEARTBEAT_TASK:
        _redis().set(BEAT_KEY, time.time())


def _age(client: redis.Redis, key: str) -> float | None:
    value = client.get(key)
    return None if value is None else time.time() - float(value)


def check() -> dict:
    """Return {component: {"ok": bool, ...}} for db, redis, worker and beat. Never raises."""
    result: dict[str, dict] = {}
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cur.fetchone()
        result["database"] = {"ok": True, "pgvector": row[0] if row else None}
    except Exception as exc:  # noqa: BLE001  (a health check reports, it does not raise)
        result["database"] = {"ok": False, "error": str(exc)[:200]}
    try:
        client = _redis()
        client.ping()
        result["redis"] = {"ok": True}
        for name, key in (("worker", WORKER_KEY), ("beat", BEAT_KEY)):
            age = _age(client, key)
            result[name] = {
                "ok": age is not None and age < STALE_AFTER_SECONDS,
                "last_seen_seconds_ago": None if age is None else round(age, 1),
            }
    except Exception as exc:  # noqa: BLE001
        result["redis"] = {"ok": False, "error": str(exc)[:200]}
        result["worker"] = {"ok": False, "error": "redis unreachable"}
        result["beat"] = {"ok": False, "error": "redis unreachable"}
    return result


_migrations_applied = False


def migrations_pending() -> bool:
    """True while the database lacks a migration this code has (a deploy that has not run ``migrate`` yet). Once
    all are applied the answer is kept for the process's life: migrations are not un-applied under a running app."""
    global _migrations_applied
    if _migrations_applied:
        return False
    from django.db.migrations.executor import MigrationExecutor  # noqa: PLC0415

    executor = MigrationExecutor(connection)
    pending = bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    _migrations_applied = not pending
    return pending


def readiness() -> dict:
    """Whether this process may take traffic: {component: {"ok": bool, ...}} for the database (reachable, migrated,
    pgvector recent enough) and Redis. Workers and beat are not part of it: a web process serves without them.
    Never raises."""
    from feedbackhub.checks import pgvector_problem  # noqa: PLC0415

    result: dict[str, dict] = {}
    try:
        problem = pgvector_problem()
        pending = migrations_pending()
        result["database"] = {"ok": not problem and not pending}
        if problem:
            result["database"]["error"] = problem
        if pending:
            result["database"]["error"] = "migrations not applied: run `manage.py migrate`"
    except Exception as exc:  # noqa: BLE001
        result["database"] = {"ok": False, "error": str(exc)[:200]}
    try:
        _redis().ping()
        result["redis"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        result["redis"] = {"ok": False, "error": str(exc)[:200]}
    return result
