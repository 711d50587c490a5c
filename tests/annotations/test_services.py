"""Services of the review workspace: validation, permissions, versioning, audit, suggestions and corrections."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from annotations import services
from annotations.models import (
    AnchorState,
    Annotation,
    AnnotationStatus,
    AuditEvent,
    Correction,
    CorrectionStatus,
    SuggestionState,
    Tag,
)
from sessions.models import TurnRole
from tests.annotations.conftest import span

pytestmark = pytest.mark.django_db


@pytest.fixture
def tag(db) -> Tag:
    return Tag.objects.get(slug="factually-incorrect")


def test_default_taxonomy_is_seeded():
    names = set(Tag.objects.values_list("name", flat=True))
    assert {
        "factually incorrect", "too vague", "wrong tone", "incomplete", "misread intent", "unsafe",
        "unsupported claim/source", "formatting",
    } <= names
    assert all(t.hotkey and t.colour.startswith("#") for t in Tag.objects.all())


def test_comment_on_a_span_stores_selectors_tags_and_an_audit_event(moderator, reply_turn, tag):
    a = services.annotation_create(
        actor=moderator, turn=reply_turn, body="Wrong city", tag_ids=[tag.pk], **span(reply_turn, "Berlin")
    )
    a.refresh_from_db()
    assert (a.exact, a.start, a.end) == ("Berlin", 23, 29)
    assert a.prefix == "The Eiffel Tower is in " and a.suffix.startswith(". It was")
    assert list(a.tags.all()) == [tag] and a.version == 1 and a.anchor_state == AnchorState.ANCHORED
    event = AuditEvent.objects.get(annotation=a)
    assert (event.action, event.actor, event.before, event.after["body"]) == ("create", moderator, None, "Wrong city")


def test_whole_reply_feedback_needs_no_span(moderator, reply_turn, tag):
    a = services.annotation_create(actor=moderator, turn=reply_turn, tag_ids=[tag.pk])
    assert a.start is None and not a.has_span


def test_span_that_does_not_match_the_text_is_rejected_naming_the_field(moderator, reply_turn):
    bad = {**span(reply_turn, "Berlin"), "exact": "Paris!"}
    with pytest.raises(ValidationError) as err:
        services.annotation_create(actor=moderator, turn=reply_turn, body="x", **bad)
    assert "exact" in err.value.message_dict
    stale = {**span(reply_turn, "Berlin"), "text_hash": "f" * 64}
    with pytest.raises(ValidationError) as err:
        services.annotation_create(actor=moderator, turn=reply_turn, body="x", **stale)
    assert "text_hash" in err.value.message_dict
    assert not Annotation.objects.exists()


def test_user_turns_cannot_be_annotated(moderator, conversation):
    user_turn = conversation.turns.filter(role=TurnRole.USER).first()
    with pytest.raises(ValidationError):
        services.annotation_create(actor=moderator, turn=user_turn, body="no")


def test_empty_comment_is_rejected(moderator, reply_turn):
    with pytest.raises(ValidationError) as err:
        services.annotation_create(actor=moderator, turn=reply_turn, body="   ")
    assert "body" in err.value.message_dict


def test_product_analyst_cannot_annotate(analyst, reply_turn):
    with pytest.raises(PermissionDenied):
        services.annotation_create(actor=analyst, turn=reply_turn, body="hi")


def test_only_the_author_edits_or_deletes(moderator, expert, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="mine")
    with pytest.raises(PermissionDenied):
        services.annotation_update(actor=expert, annotation_id=a.pk, version=1, body="hijacked")
    with pytest.raises(PermissionDenied):
        services.annotation_delete(actor=expert, annotation_id=a.pk, version=1)
    a.refresh_from_db()
    assert a.body == "mine" and a.deleted_at is None


def test_stale_version_is_a_conflict_and_overwrites_nothing(moderator, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="first")
    services.annotation_update(actor=moderator, annotation_id=a.pk, version=1, body="second")
    with pytest.raises(services.Conflict) as err:
        services.annotation_update(actor=moderator, annotation_id=a.pk, version=1, body="third")
    assert err.value.current.body == "second" and err.value.yours["body"] == "third"
    a.refresh_from_db()
    assert (a.body, a.version) == ("second", 2)


def test_edit_is_audited_with_before_and_after(moderator, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="first")
    services.annotation_update(actor=moderator, annotation_id=a.pk, version=1, body="second")
    edit = AuditEvent.objects.get(annotation=a, action="edit")
    assert edit.before["body"] == "first" and edit.after["body"] == "second"


def test_resolve_reopen_by_any_annotator(moderator, expert, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="x")
    a = services.annotation_set_status(actor=expert, annotation_id=a.pk, version=a.version, resolved=True)
    assert a.status == AnnotationStatus.RESOLVED and a.resolved_by == expert
    a = services.annotation_set_status(actor=moderator, annotation_id=a.pk, version=a.version, resolved=False)
    assert a.status == AnnotationStatus.OPEN
    assert list(AuditEvent.objects.filter(annotation=a).values_list("action", flat=True)) == [
        "create", "resolve", "reopen"
    ]


def test_analyst_cannot_resolve(moderator, analyst, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="x")
    with pytest.raises(PermissionDenied):
        services.annotation_set_status(actor=analyst, annotation_id=a.pk, version=1, resolved=True)


def test_soft_delete_and_undo(moderator, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="x")
    a = services.annotation_delete(actor=moderator, annotation_id=a.pk, version=1)
    assert a.deleted_at is not None and Annotation.objects.filter(pk=a.pk).exists()
    a = services.annotation_restore(actor=moderator, annotation_id=a.pk)
    assert a.deleted_at is None
    assert [e.action for e in AuditEvent.objects.filter(annotation=a)] == ["create", "delete", "undo_delete"]


def test_thread_replies(moderator, expert, analyst, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="x")
    r = services.reply_create(actor=expert, annotation_id=a.pk, body="Agreed")
    assert r.annotation == a
    with pytest.raises(PermissionDenied):
        services.reply_create(actor=analyst, annotation_id=a.pk, body="me too")
    with pytest.raises(PermissionDenied):
        services.reply_update(actor=moderator, reply_id=r.pk, version=1, body="not mine")
    services.reply_update(actor=expert, reply_id=r.pk, version=1, body="Agreed, fix it")
    with pytest.raises(services.Conflict):
        services.reply_update(actor=expert, reply_id=r.pk, version=1, body="stale")
    a.refresh_from_db()
    assert a.version == 1  # replies do not conflict with edits of the annotation itself


def test_accepted_suggestions_compose_the_corrected_reply(moderator, expert, reply_turn):
    s1 = services.annotation_create(
        actor=moderator, turn=reply_turn, kind="suggestion", replacement="Paris", **span(reply_turn, "Berlin")
    )
    s2 = services.annotation_create(
        actor=moderator, turn=reply_turn, kind="suggestion", replacement="about 330", **span(reply_turn, "330")
    )
    services.suggestion_decide(actor=expert, annotation_id=s2.pk, version=1, accept=True)
    services.suggestion_decide(actor=expert, annotation_id=s1.pk, version=1, accept=True)
    correction = Correction.objects.get(turn=reply_turn)
    assert correction.text == "The Eiffel Tower is in Paris. It was completed in 1889 and is about 330 metres tall."
    assert correction.status == CorrectionStatus.DRAFT
    s1.refresh_from_db()
    assert s1.suggestion_state == SuggestionState.ACCEPTED and s1.status == AnnotationStatus.RESOLVED
    reply_turn.refresh_from_db()
    assert "Berlin" in reply_turn.content  # the log itself is never changed


def test_rejected_suggestion_changes_nothing(moderator, expert, reply_turn):
    s = services.annotation_create(
        actor=moderator, turn=reply_turn, kind="suggestion", replacement="Paris", **span(reply_turn, "Berlin")
    )
    services.suggestion_decide(actor=expert, annotation_id=s.pk, version=1, accept=False)
    s.refresh_from_db()
    assert s.suggestion_state == SuggestionState.REJECTED and not Correction.objects.exists()
    with pytest.raises(ValidationError):
        services.suggestion_decide(actor=expert, annotation_id=s.pk, version=s.version, accept=True)


def test_only_domain_experts_decide_suggestions(moderator, reply_turn):
    s = services.annotation_create(
        actor=moderator, turn=reply_turn, kind="suggestion", replacement="Paris", **span(reply_turn, "Berlin")
    )
    with pytest.raises(PermissionDenied):
        services.suggestion_decide(actor=moderator, annotation_id=s.pk, version=1, accept=True)


def test_suggestion_needs_a_span(moderator, reply_turn):
    with pytest.raises(ValidationError):
        services.annotation_create(actor=moderator, turn=reply_turn, kind="suggestion", replacement="x")


def test_correction_written_whole_then_approved_by_an_expert(expert, second_expert, moderator, reply_turn):
    with pytest.raises(PermissionDenied):
        services.correction_save(actor=moderator, turn=reply_turn, text="x")
    c = services.correction_save(actor=second_expert, turn=reply_turn, text="Paris.", rationale="It is in Paris.")
    assert c.status == CorrectionStatus.DRAFT and c.version == 2
    with pytest.raises(PermissionDenied):
        services.correction_approve(actor=moderator, correction_id=c.pk, version=c.version)
    c = services.correction_approve(actor=expert, correction_id=c.pk, version=c.version)
    assert c.status == CorrectionStatus.APPROVED and c.approved_by == expert
    with pytest.raises(services.Conflict):
        services.correction_save(actor=expert, turn=reply_turn, text="stale", version=2)
    c = services.correction_save(actor=expert, turn=reply_turn, text="Paris, France.", version=c.version)
    assert c.status == CorrectionStatus.DRAFT  # a changed approved correction needs approving again
    assert [e.action for e in AuditEvent.objects.filter(correction=c)] == ["create", "edit", "approve", "edit"]


def test_reanchor_moves_or_orphans_after_the_reply_text_changes(moderator, reply_turn):
    moved = services.annotation_create(actor=moderator, turn=reply_turn, body="a", **span(reply_turn, "1889"))
    lost = services.annotation_create(actor=moderator, turn=reply_turn, body="b", **span(reply_turn, "Berlin"))
    reply_turn.content = "Note: the Eiffel Tower is in [redacted]. It was completed in 1889 and is 330 metres tall."
    reply_turn.save()
    assert services.annotations_reanchor(turn=reply_turn) == 2
    moved.refresh_from_db()
    lost.refresh_from_db()
    assert reply_turn.content[moved.start : moved.end] == "1889" and moved.anchor_state == AnchorState.ANCHORED
    assert lost.anchor_state == AnchorState.ORPHANED
    assert AuditEvent.objects.filter(annotation=lost, action="orphan", actor=None).exists()
    assert services.annotations_reanchor(turn=reply_turn) == 0
