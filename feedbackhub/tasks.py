from celery import shared_task

from feedbackhub import health


@shared_task(name="feedbackhub.tasks.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    """Sent by beat every 15 s; running it proves a worker is consuming the queue."""
    health.record_worker_heartbeat()
