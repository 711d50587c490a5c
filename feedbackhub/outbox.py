"""Sending Celery tasks without depending on Redis being up: what cannot be sent waits in a database outbox.

Use :func:`enqueue_on_commit` instead of ``task.delay_on_commit(...)``::

    from feedbackhub.outbox import enqueue_on_commit
    enqueue_on_commit(import_batch_process, batch.pk)

After the current transaction commits it sends the task; if the broker is unreachable (connection refused, timeout)
the task's name and JSON arguments are stored as an ``OutboxTask`` row instead, and the request carries on.
:func:`drain` sends stored tasks, oldest first, and deletes each once sent; it stops at the first failure (the broker
is still down). Beat sends the ``feedbackhub.outbox.drain`` task (``feedbackhub.tasks``) every 30 seconds; it runs on
a worker, so it runs as soon as Redis and the worker are back.
Tasks must take JSON-serialisable arguments (ids), which the project's tasks do.

**Coalescing.** A task that reads the latest state when it runs (sync this annotation's feedback item, embed whatever
is pending) need not be queued twice: :func:`enqueue_once_on_commit` sends it only when no such task with the same
arguments is queued and not yet started, marked by a key beside the broker's queue (``SET NX``, a fraction of a
millisecond, against a few for a broker publish). A mark stands for one message and never outlives it:

- the worker deletes it when the message is taken up, before the task reads anything (``task_prerun``), so every
  commit is read either by a task that was already queued or by one this commit sends; and when the message is
  revoked or rejected instead of run;
- it lives in the broker's own Redis database, so whatever loses the queue (a flush, a new server) loses the marks;
  :func:`purge` empties the queue and the marks together (use it, not ``celery purge``);
- a mark found while the broker holds no message at all (its queue is empty and no worker has one reserved) stands
  for a message that is gone, lost some other way (``celery purge``, a queue deleted by hand, a broker restarted
  without its data): it is dropped and the task sent, so a lost message never holds back the next send;
- it expires after ``QUEUED_MARK_SECONDS`` in any case, well under the broker's visibility timeout, so even a mark
  whose message is lost while other messages wait holds back identical sends for no longer than that, and beat's
  periodic runs of these tasks pick up what it stood for.

With Redis down every send goes out (or into the outbox); duplicates are harmless, the tasks are idempotent.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
from typing import Any

import redis
from celery import current_app
from celery.signals import task_prerun, task_revoked
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feedbackhub.models import OutboxTask

logger = logging.getLogger(__name__)

DRAIN_BATCH = 500
#: How long a "queued, not started" mark keeps further identical sends back (longer queues just send a duplicate).
QUEUED_MARK_SECONDS = 60


#: What a publish raises when the broker cannot be reached (refused, reset, timed out).
BROKER_ERRORS = (OperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError, socket.timeout, OSError)


def send(task: Any, args: tuple | list = (), kwargs: dict | None = None) -> bool:
    """Send ``task`` now; on a broker connection error store it in the outbox. True when it was sent."""
    kwargs = dict(kwargs or {})
    try:
        # No retries: a web request must not hang waiting for a broker that is down.
        task.apply_async(args=list(args), kwargs=kwargs, retry=False)
    except BROKER_ERRORS as exc:
        store(task.name, args, kwargs, error=exc)
        return False
    return True


def store(task_name: str, args: tuple | list = (), kwargs: dict | None = None, *, error: BaseException | None = None):
    row = OutboxTask.objects.create(task_name=task_name, args=list(args), kwargs=dict(kwargs or {}),
                                    last_error=f"{type(error).__name__}: {error}"[:2000] if error else "")
    logger.warning("broker unreachable: %s kept in the outbox (#%s) until it is back", task_name, row.pk)
    return row


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Like ``task.delay_on_commit(*args, **kwargs)``, falling back to the outbox when the broker is down."""
    transaction.on_commit(functools.partial(send, task, args, kwargs))


def enqueue_once_on_commit(task: Any, **kwargs: Any) -> None:
    """``enqueue_on_commit`` for a task declared with ``coalesced=True`` (it reads the latest state when it runs): not
    sent again while one with the same keyword arguments is queued and has not started (module docstring)."""
    if not getattr(task, "coalesced", False):
        raise TypeError(f"{task.name} is not declared coalesced=True: its marks would never be cleared")
    transaction.on_commit(functools.partial(_send_once, task, kwargs))


MARK_PREFIX = "outbox:queued:"


def _mark_key(task_name: str, kwargs: dict[str, Any]) -> str:
    return f"{MARK_PREFIX}{task_name}:{json.dumps(kwargs, sort_keys=True, separators=(',', ':'))}"


@functools.cache
def _marks_client(broker_url: str) -> redis.Redis:
    # One client per process and URL; its pool hands out connections per command and is safe across forks.
    return redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)


def _marks() -> redis.Redis:
    """The broker's own Redis database: marks live and die with the messages they stand for."""
    return _marks_client(settings.CELERY_BROKER_URL)


#: The Redis transport's hash of messages delivered to a worker and not yet acknowledged (kombu's default name).
UNACKED_KEY = "unacked"


def queue_of(task_name: str) -> str:
    """The queue a task is sent to: its route (``CELERY_TASK_ROUTES``), else the default queue."""
    return current_app.amqp.router.route({}, task_name)["queue"].name


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each of the app's queues (the workers' backlog), in one round trip."""
    names = sorted(current_app.amqp.queues)
    pipe = _marks().pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return dict(zip(names, pipe.execute(), strict=True))


def _broker_holds_no_message(client: redis.Redis, task: Any) -> bool:
    """True when the task's queue is empty and no worker holds an unacknowledged message: a mark found then stands
    for a message that no longer exists. Two O(1) reads."""
    queue = queue_of(task.name)
    pipe = client.pipeline(transaction=False)
    pipe.llen(queue)
    pipe.hlen(UNACKED_KEY)
    queued, unacked = pipe.execute()
    return queued == 0 and unacked == 0


def _send_once(task: Any, kwargs: dict[str, Any]) -> bool:
    try:
        client = _marks()
        key = _mark_key(task.name, kwargs)
        if not client.set(key, 1, nx=True, ex=QUEUED_MARK_SECONDS):
            if not _broker_holds_no_message(client, task):
                return False  # one is queued and will read what was just committed
            logger.warning("outbox: the mark of %s outlived its message; sending a new one", task.name)
            client.set(key, 1, ex=QUEUED_MARK_SECONDS)
    except redis.RedisError:  # the broker is down too: send() keeps the task in the outbox
        logger.warning("outbox: Redis unavailable, sending %s without coalescing", task.name, exc_info=True)
    return send(task, (), kwargs)


def _clear_mark(task_name: str, kwargs: dict[str, Any] | None) -> None:
    try:
        _marks().delete(_mark_key(task_name, dict(kwargs or {})))
    except redis.RedisError:
        logger.warning("outbox: Redis unavailable, the mark of %s is left to expire", task_name, exc_info=True)


@task_prerun.connect(dispatch_uid="outbox.coalesced.started")
def _on_started(sender: Any = None, kwargs: dict | None = None, **_: Any) -> None:
    """A coalesced task is taken up: from now on a commit sends a new one (this one may already have read too much)."""
    if getattr(sender, "coalesced", False):
        _clear_mark(sender.name, kwargs)


@task_revoked.connect(dispatch_uid="outbox.coalesced.revoked")
def _on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    """A revoked (or expired) message will not run: its mark must not hold back the next send."""
    if getattr(sender, "coalesced", False) and request is not None:
        _clear_mark(sender.name, request.kwargs)


def purge() -> int:
    """Empty the broker's queues and every coalescing mark with them; returns how many messages were dropped."""
    dropped = current_app.control.purge()
    client = _marks()
    for key in client.scan_iter(match=f"{MARK_PREFIX}*", count=500):
        client.delete(key)
    return dropped


def pending_count() -> int:
    return OutboxTask.objects.count()


def drain(*, limit: int = DRAIN_BATCH) -> int:
    """Send up to ``limit`` stored tasks, oldest first; returns how many were sent. Rows are locked with SKIP LOCKED,
    so two drains never send the same row; a row is deleted in the same transaction that sent it."""
    sent = 0
    while sent < limit:
        with transaction.atomic():
            row = OutboxTask.objects.select_for_update(skip_locked=True).order_by("id").first()
            if row is None:
                break
            try:
                current_app.send_task(row.task_name, args=row.args, kwargs=row.kwargs, retry=False)
            except BROKER_ERRORS as exc:
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                row.save(update_fields=["attempts", "last_error"])
                break
            row.delete()
            sent += 1
    if sent:
        logger.info("outbox: sent %s stored tasks", sent)
    return sent
