"""Redis really unreachable: a child process whose REDIS_URL points at a closed port keeps serving and saving, and
what it could not enqueue waits in the outbox until a drain with Redis back sends it.

The tasks sent are heartbeats, which touch only Redis: a real worker left running by the integration tests may pick
them up, and a task writing to the test database would then race this test's teardown (flush)."""

import json
import os
import socket
import subprocess
import sys

import pytest
import redis
from django.conf import settings

from annotations.triage import job
from annotations.triage.models import Cluster, Status
from feedbackhub import outbox
from feedbackhub.models import OutboxTask
from tests.annotations.triage.helpers import around, centres, make_items
from tests.integration.worker import database_url

pytestmark = pytest.mark.django_db(transaction=True)

CHILD = r"""
import json, django
django.setup()
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from feedbackhub import outbox
from annotations.triage.models import Cluster
from feedbackhub.tasks import beat_heartbeat

client = Client()
client.force_login(User.objects.get(username="mod"))
cluster = Cluster.objects.get()
out = {"queue": client.get("/triage/").status_code,
       "claim": client.post(f"/triage/c/{cluster.pk}/claim").status_code,
       "sent_now": outbox.send(beat_heartbeat)}
with transaction.atomic():
    outbox.enqueue_on_commit(beat_heartbeat)
out["drained_while_down"] = outbox.drain()
print("RESULT " + json.dumps(out))
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


def test_web_keeps_saving_and_tasks_wait_in_the_outbox_until_redis_is_back(moderator):
    make_items(around(centres(1, seed=61)[0], 2))
    job.triage_run()
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
           "ALLOWED_HOSTS": "testserver", "SECURE_COOKIES": "0", "DJANGO_SETTINGS_MODULE": "feedbackhub.settings"}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=settings.BASE_DIR, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result == {"queue": 200, "claim": 303, "sent_now": False, "drained_while_down": 0}
    cluster = Cluster.objects.get()
    assert cluster.claimed_by == moderator and cluster.status == Status.TRIAGING
    stored = list(OutboxTask.objects.order_by("id"))
    assert [t.task_name for t in stored] == ["feedbackhub.tasks.beat_heartbeat"] * 2
    assert stored[0].attempts == 1 and "Error" in stored[0].last_error

    # Redis is reachable from this process: the drain sends both and empties the outbox.
    assert outbox.drain() == 2
    assert outbox.pending_count() == 0
    assert outbox.drain() == 0


def test_send_goes_straight_to_redis_when_it_is_up():
    from feedbackhub.tasks import beat_heartbeat

    assert outbox.send(beat_heartbeat) is True
    assert OutboxTask.objects.count() == 0


STAND_IN = b"stand-in for a message (tests)"


@pytest.fixture
def sends(monkeypatch):
    """What ``outbox.send`` was asked to send, instead of publishing it (the coalescing decision is under test, and a
    real worker must not run sync tasks against this test's data)."""
    sent = []
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    def send(task, args=(), kwargs=None) -> bool:
        sent.append((task.name, kwargs))
        # A stand-in in the queue: a mark found with the broker holding no message at all is dropped as orphaned.
        broker.rpush(outbox.queue_of(task.name), STAND_IN)
        return True

    monkeypatch.setattr(outbox, "send", send)
    yield sent
    for queue in settings.WORKER_QUEUES:
        broker.lrem(queue, 0, STAND_IN)


@pytest.fixture
def no_marks():
    """Start and end with no coalescing mark (and no queued message) in this run's Redis database."""
    outbox.purge()
    yield
    outbox.purge()


def test_a_coalesced_task_is_not_sent_again_while_one_is_queued_and_not_started(sends, no_marks):
    from django.db import transaction

    from annotations.recall.tasks import sync_feedback

    for _ in range(3):
        with transaction.atomic():
            outbox.enqueue_once_on_commit(sync_feedback, annotation_id=10**12)
    with transaction.atomic():
        outbox.enqueue_once_on_commit(sync_feedback, annotation_id=10**12 + 1)  # other arguments: a task of its own
    assert sends == [("recall.sync_feedback", {"annotation_id": 10**12}),
                     ("recall.sync_feedback", {"annotation_id": 10**12 + 1})]

    # Once it has started (before reading anything), a new commit sends a new one.
    sync_feedback.apply(kwargs={"annotation_id": 10**12})  # no such annotation: nothing to sync, but it started
    with transaction.atomic():
        outbox.enqueue_once_on_commit(sync_feedback, annotation_id=10**12)
    assert len(sends) == 3

    # A rolled-back transaction sends nothing and marks nothing.
    sync_feedback.apply(kwargs={"annotation_id": 10**12})
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.enqueue_once_on_commit(sync_feedback, annotation_id=10**12)
        raise RuntimeError
    with transaction.atomic():
        outbox.enqueue_once_on_commit(sync_feedback, annotation_id=10**12)
    assert len(sends) == 4


def test_a_purged_message_takes_its_mark_with_it(sends, no_marks):
    """The queue emptied while a coalesced task waited in it: the next commit sends a new one instead of trusting a
    message that no longer exists."""
    from annotations.recall.tasks import embed_pending

    outbox.enqueue_once_on_commit(embed_pending)
    outbox.enqueue_once_on_commit(embed_pending)
    assert len(sends) == 1
    outbox.purge()
    outbox.enqueue_once_on_commit(embed_pending)
    assert len(sends) == 2


def test_a_revoked_message_takes_its_mark_with_it(sends, no_marks):
    from celery.signals import task_revoked

    from annotations.recall.tasks import embed_pending

    outbox.enqueue_once_on_commit(embed_pending)
    task_revoked.send(sender=embed_pending, request=embed_pending.request, terminated=False, signum=None, expired=True)
    outbox.enqueue_once_on_commit(embed_pending)
    assert len(sends) == 2


def test_only_a_task_declared_coalesced_can_be_sent_once():
    from feedbackhub.tasks import beat_heartbeat

    with pytest.raises(TypeError, match="coalesced=True"):
        outbox.enqueue_once_on_commit(beat_heartbeat)


def test_coalescing_sends_everything_when_redis_is_down(sends, settings):
    from annotations.recall.tasks import sync_feedback

    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    for _ in range(2):
        outbox.enqueue_once_on_commit(sync_feedback, annotation_id=10**12 + 3)
    assert len(sends) == 2
