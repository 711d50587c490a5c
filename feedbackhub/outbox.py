"""Sending Celery tasks without depending on Redis being up: what cannot be sent waits in a database outbox.

Use :func:`enqueue_on_commit` instead of ``task.delay_on_commit(...)``::

    from feedbackhub.outbox import enqueue_on_commit
    enqueue_on_commit(import_batch_process, batch.pk)

After the current transaction commits it sends the task; if the broker is unreachable (connection refused, timeout)
the task's name and JSON arguments are stored as a ``triage.OutboxTask`` row instead, and the request carries on.
:func:`drain` sends stored tasks, oldest first, and deletes each once sent; it stops at the first failure (the broker
is still down). It runs from beat every 30 seconds (``feedbackhub.outbox.drain`` task, on a worker, so it runs as soon
as Redis and the worker are back), and ``python manage.py outbox_drain`` runs it by hand.
Tasks must take JSON-serialisable arguments (ids), which the project's tasks do.

**Coalescing.** A task that reads the latest state when it runs (sync this annotation's feedback item, embed whatever
is pending) need not be queued twice: :func:`enqueue_once_on_commit` sends it only when no such task with the same
arguments is queued and not yet started, marked by a short-lived cache key (``SET NX``, a fraction of a millisecond,
against a few for a broker publish). The task calls :func:`started` first thing, before it reads anything, so every
commit is read either by a task that was already queued or by one this commit sends. A mark whose task never ran
expires after ``QUEUED_MARK_SECONDS``; with the cache down every send goes out (duplicates are harmless, the tasks are
idempotent).
"""

from __future__ import annotations

import functools
import json
import logging
import socket
from typing import Any

from celery import shared_task
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

DRAIN_BATCH = 500
#: How long a "queued, not started" mark keeps further identical sends back (longer queues just send a duplicate).
QUEUED_MARK_SECONDS = 60


def _broker_errors() -> tuple[type[BaseException], ...]:
    from kombu.exceptions import OperationalError  # noqa: PLC0415
    from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415
    from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: PLC0415

    return (OperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError, socket.timeout, OSError)


def send(task: Any, args: tuple | list = (), kwargs: dict | None = None) -> bool:
    """Send ``task`` now; on a broker connection error store it in the outbox. True when it was sent."""
    kwargs = dict(kwargs or {})
    try:
        # No retries: a web request must not hang waiting for a broker that is down.
        task.apply_async(args=list(args), kwargs=kwargs, retry=False)
    except _broker_errors() as exc:
        store(task.name, args, kwargs, error=exc)
        return False
    return True


def store(task_name: str, args: tuple | list = (), kwargs: dict | None = None, *, error: BaseException | None = None):
    from annotations.triage.models import OutboxTask  # noqa: PLC0415

    row = OutboxTask.objects.create(task_name=task_name, args=list(args), kwargs=dict(kwargs or {}),
                                    last_error=f"{type(error).__name__}: {error}"[:2000] if error else "")
    logger.warning("broker unreachable: %s kept in the outbox (#%s) until it is back", task_name, row.pk)
    return row


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Like ``task.delay_on_commit(*args, **kwargs)``, falling back to the outbox when the broker is down."""
    transaction.on_commit(functools.partial(send, task, args, kwargs))


def enqueue_once_on_commit(task: Any, **kwargs: Any) -> None:
    """``enqueue_on_commit`` for a task that reads the latest state and calls :func:`started` first: not sent again
    while one with the same keyword arguments is queued and has not started (module docstring, "Coalescing")."""
    transaction.on_commit(functools.partial(_send_once, task, kwargs))


def _queued_key(task_name: str, kwargs: dict[str, Any]) -> str:
    return f"outbox:queued:{task_name}:{json.dumps(kwargs, sort_keys=True, separators=(',', ':'))}"


def _send_once(task: Any, kwargs: dict[str, Any]) -> bool:
    try:
        if not cache.add(_queued_key(task.name, kwargs), 1, timeout=QUEUED_MARK_SECONDS):
            return False  # one is queued and will read what was just committed
    except Exception:  # the cache is only an optimisation here
        logger.warning("outbox: cache unavailable, sending %s without coalescing", task.name, exc_info=True)
    return send(task, (), kwargs)


def started(task_name: str, **kwargs: Any) -> None:
    """Called by a coalesced task before it reads anything: from now on a commit sends a new task."""
    try:
        cache.delete(_queued_key(task_name, kwargs))
    except Exception:
        logger.warning("outbox: cache unavailable, %s mark left to expire", task_name, exc_info=True)


def pending_count() -> int:
    from annotations.triage.models import OutboxTask  # noqa: PLC0415

    return OutboxTask.objects.count()


def drain(*, limit: int = DRAIN_BATCH) -> int:
    """Send up to ``limit`` stored tasks, oldest first; returns how many were sent. Rows are locked with SKIP LOCKED,
    so two drains never send the same row; a row is deleted in the same transaction that sent it."""
    from celery import current_app  # noqa: PLC0415

    from annotations.triage.models import OutboxTask  # noqa: PLC0415

    sent = 0
    while sent < limit:
        with transaction.atomic():
            row = OutboxTask.objects.select_for_update(skip_locked=True).order_by("id").first()
            if row is None:
                break
            try:
                current_app.send_task(row.task_name, args=row.args, kwargs=row.kwargs, retry=False)
            except _broker_errors() as exc:
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                row.save(update_fields=["attempts", "last_error"])
                break
            row.delete()
            sent += 1
    if sent:
        logger.info("outbox: sent %s stored tasks", sent)
    return sent


@shared_task(name="feedbackhub.outbox.drain", ignore_result=True)
def drain_task() -> int:
    """Beat sends this every 30 s; once it runs the broker is evidently back, so the stored tasks can go."""
    return drain()
