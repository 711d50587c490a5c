"""Feedback -> (after commit) the embed task through Redis -> a real `celery worker` process writes the vectors.

The second test kills the worker with SIGKILL while it embeds a backlog chunk by chunk, starts a new one, and checks
that every item ends up with exactly one vector: the killed chunk rolled back, the unacknowledged message (late acks)
was delivered again to the new worker, and the rerun skipped what had been committed.
"""

from __future__ import annotations

import json
import signal

import pytest
from django.db.models import Count

from annotations import services as review
from annotations.recall import embedding, services, tasks
from annotations.recall.models import Embedding, FeedbackItem
from feedbackhub import outbox
from sessions.models import Conversation, FeedbackEvent, Turn, TurnRole
from sessions.services import import_file
from tests.integration import worker as worker_module
from tests.integration.worker import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]



def test_new_feedback_gets_its_vector_from_the_worker(celery_worker, moderator, tmp_path):
    # A reviewer's annotation: its item synced by the worker (a task sent after the save's commit), then the embed
    # task enqueued after the sync's commit.
    conv = Conversation.objects.create(source="t", external_id="c1", content_hash="0" * 64)
    Turn.objects.create(conversation=conv, position=0, role=TurnRole.USER, content="Where is the Eiffel Tower?")
    turn = Turn.objects.create(conversation=conv, position=1, role=TurnRole.ASSISTANT, content="It is in Berlin.")
    annotation = review.annotation_create(actor=moderator, turn=turn, body="It is in Paris, not Berlin")
    wait_for("the annotation's item", FeedbackItem.objects.filter(annotation=annotation).exists, celery_worker)
    item = FeedbackItem.objects.get(annotation=annotation)
    wait_for("the annotation's vector", lambda: Embedding.objects.filter(item=item).exists(), celery_worker)
    vector = Embedding.objects.get(item=item)
    assert vector.text_hash == item.text_hash and len(vector.vector) == 384

    # An import: one sync task for the batch on the worker, then the embed task.
    record = {
        "id": "bank-1", "environment": "prod",
        "turns": [{"role": "user", "content": "How do I reset my PIN?"},
                  {"role": "assistant", "content": "Open Cards > PIN.",
                   "feedback": [{"id": "f1", "type": "thumbs_down", "text": "there is no such menu"}]}],
    }  # fmt: skip
    path = tmp_path / "bank.jsonl"
    path.write_text(json.dumps(record) + "\n")
    batch = import_file(path=path, source="bank")
    assert batch.conversations_created == 1
    event = FeedbackEvent.objects.get(conversation__external_id="bank-1")
    wait_for(
        "the imported event's vector",
        lambda: Embedding.objects.filter(item__feedback_event=event).exists(),
        celery_worker,
    )
    assert "Comment: there is no such menu" in FeedbackItem.objects.get(feedback_event=event).text


def _backlog(n: int) -> list[int]:
    """``n`` negative feedback events with long replies (so each chunk takes a while), synced to items."""
    conv = Conversation.objects.create(source="t", external_id="backlog", content_hash="1" * 64)
    Turn.objects.create(conversation=conv, position=0, role=TurnRole.USER, content="Explain my card statement.")
    reply = " ".join(f"Line {i}: the statement lists fees, interest and transfers in this order." for i in range(40))
    turn = Turn.objects.create(conversation=conv, position=1, role=TurnRole.ASSISTANT, content=reply)
    events = FeedbackEvent.objects.bulk_create(
        [
            FeedbackEvent(conversation=conv, turn=turn, event_key=f"e{i}", kind="thumbs_down", is_negative=True,
                          text=f"complaint number {i}: the fee on line {i % 40} is not explained")
            for i in range(n)
        ]
    )
    return [e.pk for e in events]


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(celery_worker, monkeypatch):
    n = 192
    # Workers of this test commit 4 items per transaction: 48 chunks, so the kill (as soon as the first one is seen)
    # lands long before the last one, even when this machine is busy.
    celery_worker.stop()
    monkeypatch.setenv("EMBEDDING_CHUNK_SIZE", "4")
    first = Worker(celery_worker.upload_dir)
    worker_module._worker = first  # the session fixture stops the current one at the end
    first.wait_ready()
    # What the sync task does for a batch: the items, then the embed task.
    assert services.feedback_items_sync_for_feedback_events(event_ids=_backlog(n)).to_embed == n
    outbox.send(tasks.embed_pending)
    assert FeedbackItem.objects.count() == n

    # Kill it once the first chunk is committed and while later ones are still to come.
    wait_for("the first chunk", lambda: Embedding.objects.exists(), first)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=30)
    done_at_kill = Embedding.objects.count()
    assert 0 < done_at_kill < n, f"the kill came too late to test anything ({done_at_kill} of {n} done)"

    # A new worker. Its short visibility timeout makes Redis hand it the killed task's unacknowledged message at
    # once (in production: after CELERY_VISIBILITY_TIMEOUT, or the beat's next embed_pending, whichever is first).
    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", "1")
    second = Worker(celery_worker.upload_dir)
    worker_module._worker = second
    second.wait_ready()
    wait_for("every item's vector", lambda: Embedding.objects.count() >= n, second)

    assert "recall.embed_pending" in second.output()  # redelivered, not re-sent: nothing else enqueued it
    per_item = Embedding.objects.values("item_id").annotate(n=Count("id"))
    assert per_item.count() == n and not per_item.filter(n__gt=1).exists()
    assert embedding.embeddings_pending_count() == 0
