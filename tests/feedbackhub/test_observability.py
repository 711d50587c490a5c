"""Request ids, JSON logs, Prometheus metrics, liveness/readiness, and the single-beat lock."""

from __future__ import annotations

import json
import logging

import pytest
import redis
from celery import current_app
from django.contrib.auth.models import User
from pythonjsonlogger.json import JsonFormatter

from feedbackhub import beat, metrics, outbox
from feedbackhub.request_id import RequestIdFilter, request_id_from


@pytest.fixture
def staff_client(client, db):
    client.force_login(User.objects.create_user("ops", is_staff=True))
    return client


@pytest.mark.django_db
def test_every_response_carries_a_request_id_and_a_proxy_given_one_is_kept(client):
    made = client.get("/healthz/live")["X-Request-ID"]
    assert len(made) == 32 and made != client.get("/healthz/live")["X-Request-ID"]
    assert client.get("/healthz/live", headers={"X-Request-ID": "edge-7f3a9c21"})["X-Request-ID"] == "edge-7f3a9c21"
    # Anything that is not a plain short token is replaced, not echoed into headers and logs.
    hostile = client.get("/healthz/live", headers={"X-Request-ID": "<script>alert(1)</script>"})["X-Request-ID"]
    assert "<" not in hostile and len(hostile) == 32
    assert request_id_from("a" * 129) != "a" * 129


@pytest.mark.django_db
def test_the_access_log_record_carries_the_request_id_and_formats_as_one_json_object(client, caplog, settings):
    logger = logging.getLogger("feedbackhub.request")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.INFO, logger="feedbackhub.request"):
            client.get("/healthz/live", headers={"X-Request-ID": "trace-0123456789"})
    finally:
        logger.setLevel(old_level)
    record = next(r for r in caplog.records if r.name == "feedbackhub.request")
    RequestIdFilter().filter(record)
    assert record.request_id == "trace-0123456789"
    formatter = JsonFormatter(settings.LOGGING["formatters"]["json"]["fmt"],
                              rename_fields=settings.LOGGING["formatters"]["json"]["rename_fields"])
    line = json.loads(formatter.format(record))
    assert line["request_id"] == "trace-0123456789"
    assert line["logger"] == "feedbackhub.request" and line["level"] == "INFO"
    assert line["method"] == "GET" and line["path"] == "/healthz/live" and line["status"] == 200
    assert line["view"] == "healthz-live" and line["duration_ms"] >= 0


def test_outside_a_request_the_log_fields_are_empty():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    RequestIdFilter().filter(record)
    assert (record.request_id, record.task_id, record.task_name) == ("", "", "")


@pytest.mark.django_db
def test_metrics_need_staff_or_the_health_token(client, settings, moderator):
    assert client.get("/metrics").status_code == 403
    settings.HEALTH_TOKEN = "scrape-secret"
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    client.force_login(moderator)
    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_metrics_expose_latency_queue_depth_outbox_backlog_and_task_runs(staff_client, settings):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(metrics.TASKS_KEY, metrics.TASK_SECONDS_KEY)
    staff_client.get("/healthz/live")
    metrics.record_task(queue="embed", task="recall.embed_pending", state="success", seconds=0.25)
    metrics.record_task(queue="embed", task="recall.embed_pending", state="success", seconds=0.75)
    metrics.record_task(queue="import", task="sessions.tasks.import_batch_process", state="failure", seconds=1.0)
    broker.rpush("import", b"a waiting message (test)")
    try:
        body = staff_client.get("/metrics").content.decode()
    finally:
        broker.delete("import", metrics.TASKS_KEY, metrics.TASK_SECONDS_KEY)
    assert 'feedbackhub_http_request_duration_seconds_count{method="GET",status="200",view="healthz-live"}' in body
    assert 'feedbackhub_tasks_total{queue="embed",state="success",task="recall.embed_pending"} 2.0' in body
    assert 'feedbackhub_tasks_total{queue="import",state="failure",task="sessions.tasks.import_batch_process"} 1.0' \
        in body
    assert 'feedbackhub_task_duration_seconds_sum{queue="embed",task="recall.embed_pending"} 1.0' in body
    assert 'feedbackhub_task_duration_seconds_count{queue="embed",task="recall.embed_pending"} 2.0' in body
    assert 'feedbackhub_queue_depth{queue="import"} 1.0' in body
    assert 'feedbackhub_queue_depth{queue="embed"} 0.0' in body
    assert "feedbackhub_outbox_size 0.0" in body
    assert "feedbackhub_embedding_backlog 0.0" in body  # registered by the recall app
    assert "feedbackhub_scrape_errors 0.0" in body


@pytest.mark.django_db
def test_liveness_asks_nothing_and_readiness_fails_without_redis(client, settings):
    assert client.get("/healthz/live").json() == {"status": "ok"}
    assert client.get("/healthz/ready").json() == {"status": "ready"}
    client.force_login(User.objects.create_user("ops", is_staff=True))
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200 and ready.json()["database"]["ok"] and ready.json()["redis"]["ok"]
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    down = client.get("/healthz/ready")
    assert down.status_code == 503 and down.json()["status"] == "unavailable"
    assert down.json()["redis"]["ok"] is False and down.json()["database"]["ok"] is True
    assert client.get("/healthz/live").status_code == 200  # a restart would not bring Redis back


def test_tasks_are_routed_to_named_queues(settings):
    # The configured queues (a test may add a queue of its own at run time, e.g. the triage worker test's).
    assert set(current_app.conf.task_queues) == set(settings.WORKER_QUEUES)
    assert outbox.queue_of("sessions.tasks.import_batch_process") == "import"
    assert outbox.queue_of("recall.embed_pending") == "embed"
    assert outbox.queue_of("triage.cluster_new") == "cluster"
    assert outbox.queue_of("curation.tasks.export_job_run") == "export"
    assert outbox.queue_of("insights.rollup_rebuild") == "default"
    assert outbox.queue_of("feedbackhub.outbox.drain") == "default"



def _scheduler(tmp_path, name: str) -> beat.SingleBeatScheduler:
    return beat.SingleBeatScheduler(app=current_app, schedule_filename=str(tmp_path / name), lazy=True)


def test_a_second_beat_sends_nothing_until_the_first_lets_go(tmp_path, settings):
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(beat.LOCK_KEY)
    first, second = _scheduler(tmp_path, "a"), _scheduler(tmp_path, "b")
    assert first._hold() is True
    assert second._hold() is False
    assert first._hold() is True  # renewing keeps it
    assert beat.lock_holder(client) == first.identity
    assert 0 < client.pttl(beat.LOCK_KEY) <= settings.BEAT_LOCK_SECONDS * 1000
    assert first.max_interval <= settings.BEAT_LOCK_SECONDS / 3  # renewed well before it expires
    first.lock.release()
    first.held = False
    assert second._hold() is True  # taken over once released
    assert first._hold() is False
    second.lock.release()


def test_a_beat_whose_lock_expired_stops_sending(tmp_path, settings):
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(beat.LOCK_KEY)
    first, second = _scheduler(tmp_path, "a"), _scheduler(tmp_path, "b")
    assert first._hold() is True
    client.delete(beat.LOCK_KEY)  # as if it had expired while the process hung
    assert second._hold() is True
    assert first._hold() is False  # it notices at its next tick and stands by
    second.lock.release()
