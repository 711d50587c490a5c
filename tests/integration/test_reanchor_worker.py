"""A re-import that edits an annotated reply: the real worker re-anchors the annotation after the import commits."""

import json
import time

import pytest

from annotations import anchoring, services
from annotations.models import AnchorState, Annotation
from sessions.models import ImportStatus, Turn, TurnRole
from sessions.services import import_file

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPLY = "Your card is blocked for 24 hours. Call 0800 123 456 to unblock it sooner."


def _write(path, reply: str) -> None:
    record = {"id": "card-1", "started_at": "2026-05-01T10:00:00Z",
              "turns": [{"role": "user", "content": "Why was my card blocked?"},
                        {"role": "assistant", "content": reply}]}
    path.write_text(json.dumps(record) + "\n")


def _wait_for(annotation: Annotation, text_hash: str, worker, timeout: float = 120.0) -> Annotation:
    deadline = time.monotonic() + timeout
    while True:
        annotation.refresh_from_db()
        if annotation.text_hash == text_hash:
            return annotation
        if time.monotonic() > deadline:
            pytest.fail(f"annotation {annotation.pk} was not re-anchored in time; worker output:\n{worker.output()}")
        time.sleep(0.2)


def test_edited_reply_is_reanchored_by_the_worker(celery_worker, expert, tmp_path):
    path = tmp_path / "cards.jsonl"
    _write(path, REPLY)
    assert import_file(path=path, source="bank-bot").status == ImportStatus.DONE
    turn = Turn.objects.get(role=TurnRole.ASSISTANT)
    quote = "0800 123 456"
    start = turn.content.index(quote)
    kept = services.annotation_create(actor=expert, turn=turn, body="Wrong number.", start=start,
                                      end=start + len(quote), exact=quote, text_hash=anchoring.text_hash(turn.content))
    lost = services.annotation_create(actor=expert, turn=turn, body="Too long.", start=REPLY.index("24 hours"),
                                      end=REPLY.index("24 hours") + len("24 hours"), exact="24 hours",
                                      text_hash=anchoring.text_hash(turn.content))

    edited = "Sorry! " + REPLY.replace("24 hours", "a day")
    _write(path, edited)
    batch = import_file(path=path, source="bank-bot")
    assert (batch.status, batch.conversations_updated) == (ImportStatus.DONE, 1)
    new_hash = anchoring.text_hash(edited)

    kept = _wait_for(kept, new_hash, celery_worker)
    assert kept.anchor_state == AnchorState.ANCHORED
    assert (kept.start, kept.end) == (edited.index(quote), edited.index(quote) + len(quote))
    lost = _wait_for(lost, new_hash, celery_worker)
    assert lost.anchor_state == AnchorState.ORPHANED
