"""Prometheus metrics, served at ``/metrics`` (staff or HEALTH_TOKEN, like ``/healthz``'s details).

What is exported, and where each number lives:

- ``feedbackhub_http_request_duration_seconds`` (histogram by view, method, status): observed in the web process
  by the request-id middleware. Under gunicorn (several worker processes) prometheus-client's multiprocess mode
  adds up every worker's numbers: ``manage.py serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` (docs/deploy.md).
- ``feedbackhub_tasks_total`` (by queue, task, state) and ``feedbackhub_task_duration_seconds`` (sum and count by
  queue and task): Celery workers may run on other machines, so they add their counts to a Redis hash
  (:func:`record_task`) and the scrape reads it: one number for the whole fleet.
- ``feedbackhub_queue_depth`` (by queue): messages waiting in each Celery queue, read at scrape time.
- ``feedbackhub_outbox_size``: tasks kept in the outbox while Redis was unreachable (feedbackhub.outbox).
- Gauges the apps register with :func:`register_gauge` from their ``AppConfig.ready()`` (the core imports no app):
  recall's embedding backlog, for one.

A collector that fails (Redis or the database down) is skipped and counted in ``feedbackhub_scrape_errors``; the
scrape itself still answers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

import redis
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

TASKS_KEY = "feedbackhub:metrics:tasks"
TASK_SECONDS_KEY = "feedbackhub:metrics:task_seconds"

#: Latency buckets around the page targets (60 ms review page, 15 ms feedback event, 2 s agreement).
REQUEST_BUCKETS = (0.005, 0.01, 0.015, 0.025, 0.05, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_SECONDS = Histogram(
    "feedbackhub_http_request_duration_seconds", "Time to serve a request, by view name, method and status.",
    ["view", "method", "status"], buckets=REQUEST_BUCKETS,
)

#: name -> (help, callable returning a number); filled by the apps (module docstring).
_GAUGES: dict[str, tuple[str, Callable[[], float]]] = {}


def register_gauge(name: str, documentation: str, read: Callable[[], float]) -> None:
    """Export ``read()`` as gauge ``name`` at every scrape (call from an AppConfig.ready())."""
    _GAUGES[name] = (documentation, read)


def observe_request(*, view: str, method: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(view=view, method=method, status=str(status)).observe(seconds)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1)


def record_task(*, queue: str, task: str, state: str, seconds: float | None) -> None:
    """Count one finished task run (called in the worker). Never raises: metrics do not fail a task."""
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.hincrby(TASKS_KEY, f"{queue}|{task}|{state}", 1)
        if seconds is not None:
            pipe.hincrbyfloat(TASK_SECONDS_KEY, f"{queue}|{task}|sum", seconds)
            pipe.hincrby(TASK_SECONDS_KEY, f"{queue}|{task}|count", 1)
        pipe.execute()
    except redis.RedisError:
        logger.debug("task metrics not recorded (Redis unreachable)", exc_info=True)


class LiveCollector(Collector):
    """What is read at scrape time: task counters from Redis, queue depth, outbox size, the apps' gauges."""

    def collect(self) -> Iterable:
        errors = 0
        try:
            yield from self._tasks()
        except redis.RedisError:
            errors += 1
        try:
            from feedbackhub import outbox  # noqa: PLC0415 (imports Celery's app, which needs settings)

            depth = GaugeMetricFamily("feedbackhub_queue_depth", "Messages waiting in each Celery queue.",
                                      labels=["queue"])
            for queue, length in outbox.queue_lengths().items():
                depth.add_metric([queue], length)
            yield depth
        except redis.RedisError:
            errors += 1
        gauges = {"feedbackhub_outbox_size": ("Tasks kept in the outbox while Redis was unreachable.",
                                              _outbox_size), **_GAUGES}
        for name, (documentation, read) in gauges.items():
            try:
                yield GaugeMetricFamily(name, documentation, value=float(read()))
            except Exception:  # noqa: BLE001 (one failing reading must not fail the scrape)
                logger.warning("metric %s could not be read", name, exc_info=True)
                errors += 1
        yield GaugeMetricFamily("feedbackhub_scrape_errors", "Collectors that failed during this scrape.",
                                value=errors)

    def _tasks(self) -> Iterable:
        client = _redis()
        counts = CounterMetricFamily("feedbackhub_tasks", "Celery task runs, by queue, task and final state.",
                                     labels=["queue", "task", "state"])
        for field, value in sorted(client.hgetall(TASKS_KEY).items()):
            queue, task, state = field.decode().split("|")
            counts.add_metric([queue, task, state], int(value))
        yield counts
        raw = {k.decode(): float(v) for k, v in client.hgetall(TASK_SECONDS_KEY).items()}
        durations = SummaryMetricFamily("feedbackhub_task_duration_seconds", "Celery task run time.",
                                        labels=["queue", "task"])
        for key in sorted(k for k in raw if k.endswith("|sum")):
            queue, task, _ = key.split("|")
            durations.add_metric([queue, task], count_value=raw.get(f"{queue}|{task}|count", 0), sum_value=raw[key])
        yield durations


def _outbox_size() -> float:
    from feedbackhub import outbox  # noqa: PLC0415

    return outbox.pending_count()


def exposition() -> bytes:
    """The text exposition of every metric: this process's (or, in multiprocess mode, every web worker's) request
    metrics and the live readings."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    registry.register(LiveCollector())
    return generate_latest(registry)


# --- Task runs (connected in every process; only workers run tasks) ----------------------------------------------

_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str | None = None, **_) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


@task_postrun.connect
def _task_finished(task_id: str | None = None, task=None, state: str | None = None, **_) -> None:
    started = _started.pop(task_id or "", None)
    if task is None:
        return
    delivery = getattr(task.request, "delivery_info", None) or {}
    queue = delivery.get("routing_key") or "unknown"
    record_task(queue=queue, task=task.name, state=(state or "UNKNOWN").lower(),
                seconds=None if started is None else time.monotonic() - started)
