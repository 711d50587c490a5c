from celery import shared_task

from feedbackhub import health, metrics, outbox  # noqa: F401 (metrics: counts every task run in the worker)


@shared_task(name="feedbackhub.tasks.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    """Sent by beat every 15 s; running it proves a worker is consuming the queue."""
    health.record_worker_heartbeat()


@shared_task(name="feedbackhub.outbox.drain", ignore_result=True)
def outbox_drain() -> int:
    """Beat sends this every 30 s; once it runs the broker is evidently back, so the stored tasks can go."""
    return outbox.drain()
