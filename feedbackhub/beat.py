"""Celery beat that runs once however many beat processes are started (``CELERY_BEAT_SCHEDULER``).

Beat sends the periodic tasks (settings.CELERY_BEAT_SCHEDULE); two beats would send each one twice. Deployments
start beat on one machine, but a restart that overlaps the old process, a second machine with the same units or a
container scheduler that briefly runs two copies all happen. So each beat process holds a lock in the broker's
Redis (a ``redis.lock.Lock`` with a token, expiring after ``BEAT_LOCK_SECONDS``) and sends nothing without it:

- at every tick the holder renews the lock; the tick interval is capped at a third of the expiry, so a live holder
  never loses it between ticks;
- a process that does not hold the lock stands by and tries again at each tick: it takes over within
  ``BEAT_LOCK_SECONDS`` after the holder stops (a crash) or at once after it exits cleanly (it releases the lock);
- with Redis unreachable no beat sends (nothing could be sent anyway: Redis is the broker).

This is Celery's documented extension point for schedulers (``beat --scheduler`` / ``beat_scheduler``).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import redis
from celery.beat import PersistentScheduler
from django.conf import settings
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

logger = logging.getLogger(__name__)

LOCK_KEY = "feedbackhub:beat:lock"


def beat_lock(client: redis.Redis | None = None) -> Lock:
    """The lock every beat process competes for (expiring after ``BEAT_LOCK_SECONDS``)."""
    client = client or redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5, socket_connect_timeout=5)
    return Lock(client, LOCK_KEY, timeout=settings.BEAT_LOCK_SECONDS, thread_local=False)


def lock_holder(client: redis.Redis) -> str | None:
    """Who holds the beat lock (``host:pid``), if anyone."""
    holder = client.get(LOCK_KEY + ":holder")
    return holder.decode() if holder else None


class SingleBeatScheduler(PersistentScheduler):
    """A ``PersistentScheduler`` that sends only while this process holds the beat lock (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = beat_lock()
        self.held = False
        self.said_standby = False
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        # Renew well within the expiry: beat sleeps at most max_interval between ticks.
        self.max_interval = min(self.max_interval, settings.BEAT_LOCK_SECONDS / 3)

    def _hold(self) -> bool:
        try:
            if self.held:
                self.lock.reacquire()
            elif self.lock.acquire(blocking=False):
                logger.info("beat lock taken by %s: sending the periodic tasks", self.identity)
                self.held = True
            if self.held:
                self.lock.redis.set(LOCK_KEY + ":holder", self.identity, ex=settings.BEAT_LOCK_SECONDS)
        except LockError:
            logger.warning("beat lock lost by %s (it expired): standing by", self.identity)
            self.held = False
        except RedisError as exc:
            logger.warning("beat lock unavailable (%s): sending nothing until Redis answers", exc)
            self.held = False
        return self.held

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold():
            if not self.said_standby:  # said once per stand-by, not at every tick
                logger.info("another beat holds the lock (%s): %s stands by",
                            lock_holder(self.lock.redis) or "unknown", self.identity)
                self.said_standby = True
            return self.max_interval
        self.said_standby = False
        return super().tick(*args, **kwargs)

    def close(self) -> None:
        if self.held:
            try:
                self.lock.release()
                self.lock.redis.delete(LOCK_KEY + ":holder")
            except (LockError, RedisError):
                pass  # expired or unreachable: the next beat takes over after the expiry
            self.held = False
        super().close()
