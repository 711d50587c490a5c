"""A re-import that changes a reply's text re-anchors the annotations on it, through annotations.tasks.reanchor_turns
sent when the chunk commits: set-based, only for annotated turns whose text changed."""

from __future__ import annotations

import json

import pytest

from annotations import anchoring, services
from annotations.models import AnchorState, Annotation
from annotations.tasks import reanchor_turns
from sessions.models import ImportStatus, Turn, TurnRole
from sessions.services import import_file
from tests.sent_tasks import sent_tasks

pytestmark = pytest.mark.django_db

REPLY = "The Eiffel Tower is in Berlin. It was completed in 1889."


def write(path, replies: dict[str, str], *, question: str = "Where is the Eiffel Tower?", latency: int = 900) -> None:
    lines = [
        json.dumps({
            "id": conv_id,
            "started_at": "2026-05-01T10:00:00Z",
            "turns": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": reply, "latency_ms": latency},
            ],
        })
        for conv_id, reply in replies.items()
    ]
    path.write_text("\n".join(lines) + "\n")


def reanchor_calls(callbacks) -> list[list[int]]:
    """The turn ids of every reanchor_turns task the import registered to send on commit."""
    return [list(args[0]) for name, args, _ in sent_tasks(callbacks) if name == reanchor_turns.name]


def reply_of(conv_id: str) -> Turn:
    return Turn.objects.get(conversation__external_id=conv_id, role=TurnRole.ASSISTANT)


def annotate(actor, turn: Turn, quote: str) -> Annotation:
    start = turn.content.index(quote)
    return services.annotation_create(
        actor=actor, turn=turn, body="Wrong city.", start=start, end=start + len(quote), exact=quote,
        text_hash=anchoring.text_hash(turn.content),
    )


def reimport(path, django_capture_on_commit_callbacks) -> list[list[int]]:
    with django_capture_on_commit_callbacks() as callbacks:
        batch = import_file(path=path, source="tests")
    assert batch.status == ImportStatus.DONE, batch.error
    return reanchor_calls(callbacks)


def test_changed_reply_text_sends_its_turn_and_the_task_moves_or_orphans_the_span(
    tmp_path, expert, django_capture_on_commit_callbacks
):
    path = tmp_path / "logs.jsonl"
    write(path, {"moved": REPLY, "gone": REPLY, "same": REPLY, "plain": REPLY})
    assert import_file(path=path, source="tests").status == ImportStatus.DONE
    moved = annotate(expert, reply_of("moved"), "Berlin")
    gone = annotate(expert, reply_of("gone"), "Berlin")
    same = annotate(expert, reply_of("same"), "Berlin")

    # "moved": text before the span; "gone": the span's text replaced; "same": unchanged; "plain": changed but
    # not annotated, so there is nothing to re-anchor.
    write(path, {"moved": "Careful: " + REPLY, "gone": REPLY.replace("Berlin", "Paris"), "same": REPLY,
                 "plain": REPLY + " Edited."})
    calls = reimport(path, django_capture_on_commit_callbacks)
    assert len(calls) == 1
    assert sorted(calls[0]) == sorted([moved.turn_id, gone.turn_id])

    assert reanchor_turns(*calls) == 2
    moved.refresh_from_db()
    gone.refresh_from_db()
    same.refresh_from_db()
    new_text = reply_of("moved").content
    assert moved.anchor_state == AnchorState.ANCHORED
    assert new_text[moved.start:moved.end] == "Berlin" and moved.start == len("Careful: ") + REPLY.index("Berlin")
    assert moved.text_hash == anchoring.text_hash(new_text)
    assert gone.anchor_state == AnchorState.ORPHANED
    assert (same.anchor_state, same.version) == (AnchorState.ANCHORED, 1)


def test_reimport_that_leaves_annotated_text_alone_sends_nothing(tmp_path, expert, django_capture_on_commit_callbacks):
    path = tmp_path / "logs.jsonl"
    write(path, {"c1": REPLY})
    assert import_file(path=path, source="tests").status == ImportStatus.DONE
    annotate(expert, reply_of("c1"), "Berlin")

    # The conversation changes (another question, another latency) but the annotated reply's text does not.
    write(path, {"c1": REPLY}, question="Where is it?", latency=1200)
    assert reimport(path, django_capture_on_commit_callbacks) == []
    assert reply_of("c1").latency_ms == 1200
