"""Feedback items: the text they embed, and how they follow annotations, corrections and imports."""

from __future__ import annotations

import json

import pytest
from django.db import IntegrityError, transaction

from annotations import services as review
from annotations.models import Tag
from annotations.recall import services
from annotations.recall import text as item_text
from annotations.recall.models import FeedbackItem, SourceKind
from sessions.models import Conversation, FeedbackEvent
from sessions.services import import_file
from tests.annotations.conftest import span
from tests.factories import make_conversation
from tests.sent_tasks import sent_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def tag() -> Tag:
    return Tag.objects.get(slug="factually-incorrect")


# --- text -----------------------------------------------------------------------------------------------------------


def test_clip_cuts_at_a_word_boundary_with_an_ellipsis():
    assert item_text.clip("  short   text ", 50) == "short text"
    cut = item_text.clip("alpha beta gamma delta epsilon", 16)
    assert cut == "alpha beta…" and len(cut) <= 16


def test_window_centres_the_span_in_a_long_reply():
    reply = "filler " * 200 + "THE WRONG CLAIM" + " tail" * 200
    start = reply.index("THE WRONG CLAIM")
    piece = item_text.window(reply, start, start + 15, 200)
    assert "THE WRONG CLAIM" in piece and piece.startswith("…") and piece.endswith("…")
    assert len(piece) <= 202


def test_annotation_text_puts_the_feedback_before_the_exchange(moderator, reply_turn, tag):
    a = review.annotation_create(
        actor=moderator, turn=reply_turn, body="Wrong city", tag_ids=[tag.pk], **span(reply_turn, "Berlin")
    )
    item = services.feedback_item_sync_for_annotation(annotation_id=a.pk)
    lines = item.text.splitlines()
    assert lines == [
        "Tags: factually incorrect",
        "Comment: Wrong city",
        "Highlighted: Berlin",
        "User asked: Question 0?",
        f"Reply: {reply_turn.content}",
    ]
    assert item.text_hash == item_text.text_hash(item.text)
    assert (item.source, item.turn_id, item.conversation_id, item.tag_ids) == (
        SourceKind.ANNOTATION, reply_turn.pk, reply_turn.conversation_id, [tag.pk]
    )
    assert item.is_negative and item.is_active and not item.is_resolved


def test_feedback_event_text_and_filter_columns():
    conv = make_conversation(
        turns=[("user", "How do I reset my PIN?"), ("assistant", "Open Cards > PIN.")],
        feedback={1: [{"kind": "thumbs_down", "text": "That menu does not exist", "categories": ["Too vague", "x"]}]},
        environment="prod", model_version="gpt-test-2", user_role="retail", app_version="3.1",
    )
    event = FeedbackEvent.objects.get(conversation=conv)
    result = services.feedback_items_sync_for_feedback_events(event_ids=[event.pk])
    assert (result.created, result.to_embed) == (1, 1)
    item = FeedbackItem.objects.get(feedback_event=event)
    assert item.text.splitlines() == [
        "Feedback: Thumbs down",
        "Categories: Too vague, x",
        "Comment: That menu does not exist",
        "User asked: How do I reset my PIN?",
        "Reply: Open Cards > PIN.",
    ]
    assert (item.environment, item.model_version, item.user_role, item.app_version) == (
        "prod", "gpt-test-2", "retail", "3.1"
    )
    # The end user's category names a tag of the taxonomy; the unknown one does not.
    assert item.tag_ids == [Tag.objects.get(name="too vague").pk]
    assert item.occurred_at == event.created_at and item.source == SourceKind.FEEDBACK_EVENT and item.is_negative


def test_feedback_without_text_or_negative_signal_is_not_an_item_and_sync_is_idempotent():
    conv = make_conversation(feedback={1: [{"kind": "thumbs_up"}, {"kind": "copy"}, {"kind": "regenerate"},
                                            {"kind": "rating", "rating": 5, "text": "great answer"}]})
    ids = list(FeedbackEvent.objects.filter(conversation=conv).values_list("pk", flat=True))
    first = services.feedback_items_sync_for_feedback_events(event_ids=ids)
    assert sorted(FeedbackItem.objects.values_list("kind", flat=True)) == ["rating", "regenerate"]
    before = list(FeedbackItem.objects.order_by("id").values("id", "text_hash", "updated_at"))
    again = services.feedback_items_sync_for_feedback_events(event_ids=ids)
    assert (first.created, again.created, again.updated, again.deleted, again.to_embed) == (2, 0, 0, 0, 0)
    assert list(FeedbackItem.objects.order_by("id").values("id", "text_hash", "updated_at")) == before


def test_an_event_that_stops_qualifying_loses_its_item():
    conv = make_conversation(feedback={1: [{"kind": "comment", "text": "meh"}]})
    event = FeedbackEvent.objects.get(conversation=conv)
    services.feedback_items_sync_for_feedback_events(event_ids=[event.pk])
    FeedbackEvent.objects.filter(pk=event.pk).update(text="")
    result = services.feedback_items_sync_for_feedback_events(event_ids=[event.pk])
    assert result.deleted == 1 and not FeedbackItem.objects.exists()


# --- annotations (hooked in annotations.services: a task sent after commit) ----------------------------------------


def test_annotation_create_edit_delete_and_restore_follow_on_commit(
    moderator, reply_turn, tag, django_capture_on_commit_callbacks, tasks_run_here
):
    with django_capture_on_commit_callbacks(execute=True):
        a = review.annotation_create(actor=moderator, turn=reply_turn, body="Wrong city", **span(reply_turn, "Berlin"))
    item = FeedbackItem.objects.get(annotation=a)
    first_hash = item.text_hash

    with django_capture_on_commit_callbacks(execute=True):
        a = review.annotation_update(actor=moderator, annotation_id=a.pk, version=a.version, body="It is in Paris",
                                     tag_ids=[tag.pk])
    item.refresh_from_db()
    assert "Comment: It is in Paris" in item.text and "Tags: factually incorrect" in item.text
    assert item.text_hash != first_hash and item.tag_ids == [tag.pk]
    assert FeedbackItem.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        a = review.annotation_delete(actor=moderator, annotation_id=a.pk, version=a.version)
    item.refresh_from_db()
    assert not item.is_active

    with django_capture_on_commit_callbacks(execute=True):
        review.annotation_restore(actor=moderator, annotation_id=a.pk)
    item.refresh_from_db()
    assert item.is_active and FeedbackItem.objects.count() == 1


def test_resolution_follows_annotation_status_and_approved_corrections(
    moderator, expert, second_expert, reply_turn, django_capture_on_commit_callbacks, tasks_run_here
):
    conv = reply_turn.conversation
    with django_capture_on_commit_callbacks(execute=True):
        a = review.annotation_create(actor=moderator, turn=reply_turn, body="Wrong city")
    event = FeedbackEvent.objects.create(conversation=conv, turn=reply_turn, event_key="e1", kind="thumbs_down",
                                         is_negative=True)
    services.feedback_items_sync_for_feedback_events(event_ids=[event.pk])
    assert not FeedbackItem.objects.filter(is_resolved=True).exists()

    with django_capture_on_commit_callbacks(execute=True):
        a = review.annotation_set_status(actor=moderator, annotation_id=a.pk, version=a.version, resolved=True)
    assert set(FeedbackItem.objects.filter(is_resolved=True).values_list("source", flat=True)) == {"annotation"}

    with django_capture_on_commit_callbacks(execute=True):
        correction = review.correction_save(actor=second_expert, turn=reply_turn,
                                            text="The Eiffel Tower is in Paris.")
    assert FeedbackItem.objects.filter(is_resolved=True).count() == 1  # a draft resolves nothing
    with django_capture_on_commit_callbacks(execute=True):
        correction = review.correction_approve(actor=expert, correction_id=correction.pk, version=correction.version)
    assert FeedbackItem.objects.filter(is_resolved=True).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        review.correction_save(actor=expert, turn=reply_turn, text="Paris.", version=correction.version)
    # Back to draft: the event is unresolved again, the resolved annotation stays resolved.
    assert list(FeedbackItem.objects.filter(is_resolved=True).values_list("source", flat=True)) == ["annotation"]


def test_deleting_the_source_deletes_the_item(moderator, reply_turn):
    a = review.annotation_create(actor=moderator, turn=reply_turn, body="x")
    services.feedback_item_sync_for_annotation(annotation_id=a.pk)
    a.delete()
    assert not FeedbackItem.objects.exists()
    assert services.feedback_item_sync_for_annotation(annotation_id=a.pk) is None


def test_one_item_per_source_is_enforced_by_the_database(moderator, reply_turn):

    a = review.annotation_create(actor=moderator, turn=reply_turn, body="x")
    item = services.feedback_item_sync_for_annotation(annotation_id=a.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        FeedbackItem.objects.create(
            source=SourceKind.ANNOTATION, annotation=a, conversation_id=item.conversation_id, turn_id=item.turn_id,
            text="t", text_hash="h",
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        FeedbackItem.objects.create(  # a feedback item must name its feedback event
            source=SourceKind.FEEDBACK_EVENT, conversation_id=item.conversation_id, turn_id=item.turn_id,
            text="t", text_hash="h",
        )


# --- imports --------------------------------------------------------------------------------------------------------


def _record(i: int, *, text: str = "That menu does not exist", reply: str = "Open Cards > PIN.") -> dict:
    return {
        "id": f"bank-{i}", "environment": "prod", "model_version": "gpt-x", "user": {"id": "u1", "role": "retail"},
        "started_at": "2026-05-01T10:00:00Z",
        "turns": [
            {"role": "user", "content": f"How do I reset my PIN ({i})?"},
            {"role": "assistant", "content": reply,
             "feedback": [{"id": f"fb-{i}", "type": "thumbs_down", "text": text},
                          {"id": f"up-{i}", "type": "thumbs_up"}]},
        ],
    }  # fmt: skip


def test_import_enqueues_one_set_based_sync_for_the_batch(tmp_path, django_capture_on_commit_callbacks):
    path = tmp_path / "bank.jsonl"
    path.write_text("\n".join(json.dumps(_record(i)) for i in range(30)) + "\n")
    with django_capture_on_commit_callbacks() as callbacks:
        batch = import_file(path=path, source="bank")
    assert batch.conversations_created == 30
    # One task for the whole batch, sent on commit; the test runs what the worker would with the batch id.
    sent = [(name, args) for name, args, _ in sent_tasks(callbacks)]
    assert sent.count(("recall.sync_import_batch", (batch.pk,))) == 1
    result = services.feedback_items_sync_for_import(batch_id=batch.pk)
    assert (result.created, result.to_embed) == (30, 30)  # the thumbs-up events are not items
    assert FeedbackItem.objects.filter(source=SourceKind.FEEDBACK_EVENT).count() == 30

    # A changed re-import: only the changed conversation's item changes; nothing is duplicated.
    lines = [json.dumps(_record(i, text="Still wrong" if i == 3 else "That menu does not exist")) for i in range(30)]
    path.write_text("\n".join(lines) + "\n")
    again = import_file(path=path, source="bank")
    assert (again.conversations_updated, again.conversations_unchanged) == (1, 29)
    result = services.feedback_items_sync_for_import(batch_id=again.pk)
    assert (result.created, result.updated, result.to_embed) == (0, 1, 1)
    assert FeedbackItem.objects.count() == 30
    changed = FeedbackItem.objects.get(conversation__external_id="bank-3")
    assert "Comment: Still wrong" in changed.text

    # The event disappears from the record: its item goes with it.
    record = _record(5)
    record["turns"][1]["feedback"] = []
    path.write_text(json.dumps(record) + "\n")
    import_file(path=path, source="bank")
    assert not FeedbackItem.objects.filter(conversation__external_id="bank-5").exists()
    assert FeedbackItem.objects.count() == 29
    assert Conversation.objects.count() == 30
