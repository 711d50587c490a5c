"""A coalescing mark never outlives its message: a message lost outside ``outbox.purge`` (the queue deleted, a
broker restarted without its data) cannot hold back the next send of the same task."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.db import transaction

from annotations.recall.tasks import embed_pending
from feedbackhub import outbox
from tests.sent_tasks import sent_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker() -> redis.Redis:
    outbox.purge()
    yield redis.Redis.from_url(settings.CELERY_BROKER_URL)
    outbox.purge()


def _send_once(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        outbox.enqueue_once_on_commit(embed_pending)


def test_a_mark_whose_message_was_lost_does_not_hold_back_the_next_send(broker, django_capture_on_commit_callbacks):
    queue = outbox.queue_of(embed_pending.name)
    _send_once(django_capture_on_commit_callbacks)
    _send_once(django_capture_on_commit_callbacks)
    assert broker.llen(queue) == 1  # the second was coalesced into the queued one
    assert broker.exists(outbox._mark_key(embed_pending.name, {}))

    broker.delete(queue)  # lost without outbox.purge: the mark stays behind
    _send_once(django_capture_on_commit_callbacks)
    assert broker.llen(queue) == 1  # detected: a new message went out at once, not after the mark's 60 s

    _send_once(django_capture_on_commit_callbacks)
    assert broker.llen(queue) == 1  # and coalescing works again behind the new message


def test_a_mark_lives_far_shorter_than_the_visibility_timeout():
    assert outbox.QUEUED_MARK_SECONDS * 10 <= settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]


def test_what_was_sent_is_recorded(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        outbox.enqueue_once_on_commit(embed_pending)
    assert sent_tasks(callbacks) == [("recall.embed_pending", (), {})]
