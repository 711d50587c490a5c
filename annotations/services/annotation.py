"""Writes of annotations (comments and suggested edits) and their reply threads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotations import anchoring
from annotations import permissions as perms
from annotations.events import feedback_changed
from annotations.inbox import services as inbox
from annotations.models import Annotation, AnnotationKind, AnnotationReply, AnnotationStatus, SuggestionState
from annotations.services.versioning import (
    active_tags,
    annotation_state,
    audit,
    check_version,
    clean_body,
    commit,
    lock_annotation,
    reply_state,
    touch,
)
from sessions.models import Turn, TurnRole

# --- annotations ----------------------------------------------------------------------------------------------------


@transaction.atomic
def annotation_create(
    *,
    actor,
    turn: Turn,
    body: str = "",
    tag_ids: Iterable[int] = (),
    kind: str = AnnotationKind.COMMENT,
    start: int | None = None,
    end: int | None = None,
    exact: str = "",
    text_hash: str = "",
    replacement: str = "",
    is_gold: bool = False,
) -> Annotation:
    """Create a comment or suggested edit on ``turn`` (an assistant turn), on a span or (no ``start``) the whole reply.

    The span is validated against the current turn text: ``exact`` must be ``text[start:end]`` in code points and
    ``text_hash`` the sha256 of that text. A comment needs a body or a tag; a suggestion needs a span. A gold
    annotation (the final one an adjudicator chose from several reviewers' work) is for domain experts.
    """
    perms.require_annotate(actor)
    if is_gold:
        perms.require_decide(actor)
    if turn.role != TurnRole.ASSISTANT:
        raise ValidationError({"turn": "Only assistant replies can be annotated."})
    if kind not in AnnotationKind.values:
        raise ValidationError({"kind": f"Unknown kind {kind!r}."})
    body = clean_body(body)
    tags = active_tags(tag_ids)
    fields: dict[str, Any] = {}
    if start is not None or end is not None:
        if start is None or end is None:
            raise ValidationError({"start": "A span needs both start and end."})
        try:
            sel = anchoring.validate(turn.content, start=int(start), end=int(end), exact=exact, text_sha256=text_hash)
        except anchoring.SelectorError as exc:
            raise ValidationError({exc.field: exc.message}) from None
        fields = {
            "exact": sel.exact,
            "prefix": sel.prefix,
            "suffix": sel.suffix,
            "start": sel.start,
            "end": sel.end,
            "text_hash": text_hash,
        }
    else:
        fields = {"text_hash": anchoring.text_hash(turn.content)}
    if kind == AnnotationKind.SUGGESTION:
        if "start" not in fields:
            raise ValidationError({"start": "A suggested edit replaces a span: select the text to replace."})
        replacement = replacement or ""
        if len(replacement) > anchoring.MAX_QUOTE_CHARS:
            raise ValidationError({"replacement": f"At most {anchoring.MAX_QUOTE_CHARS} characters."})
        if replacement == fields["exact"]:
            raise ValidationError({"replacement": "The replacement is the same as the selected text."})
        fields.update(replacement=replacement, suggestion_state=SuggestionState.PENDING)
    elif not body and not tags:
        raise ValidationError({"body": "Write a comment or choose at least one tag."})

    annotation = Annotation.objects.create(
        conversation_id=turn.conversation_id, turn=turn, author=actor, kind=kind, body=body, is_gold=is_gold, **fields
    )
    if tags:
        annotation.tags.set(tags)
    annotation.tag_pk_list = [t.pk for t in tags]  # type: ignore[attr-defined]
    annotation.thread_rows = []  # type: ignore[attr-defined]  # a new annotation has no thread yet
    audit(actor=actor, action="create", obj=annotation, after=annotation_state(annotation))
    inbox.notify_annotation(actor=actor, annotation=annotation)
    feedback_changed.send(sender=Annotation, annotation_id=annotation.pk, turn_id=None, created=True)
    return annotation


@transaction.atomic
def annotation_update(
    *,
    actor,
    annotation_id: int,
    version: int | None,
    body: str,
    tag_ids: Iterable[int] | None = None,
    replacement: str | None = None,
) -> Annotation:
    """Edit one's own annotation text (and tags, and a pending suggestion's replacement). Stale version: Conflict."""
    annotation = lock_annotation(annotation_id)
    perms.require_author(actor, annotation)
    yours = {"body": body, "replacement": replacement}
    if annotation.deleted_at is not None:
        raise ValidationError({"annotation": "This annotation was deleted; undo the delete first."})
    check_version(annotation, version, yours)
    current_tags = list(annotation.tag_pk_list)  # type: ignore[attr-defined]
    before = annotation_state(annotation, current_tags)
    annotation.body = clean_body(body)
    if tag_ids is not None:
        new_tags = active_tags(tag_ids)
        annotation.tags.set(new_tags)
        current_tags = annotation.tag_pk_list = [t.pk for t in new_tags]  # type: ignore[attr-defined]
    if replacement is not None and annotation.is_suggestion:
        if annotation.suggestion_state != SuggestionState.PENDING:
            raise ValidationError({"replacement": "The suggestion was already decided."})
        annotation.replacement = replacement
    if not annotation.is_suggestion and not annotation.body and not current_tags:
        raise ValidationError({"body": "Write a comment or keep at least one tag."})
    # Only what an edit changes (updated_at moves with auto_now): a short UPDATE, not every column written back.
    commit(actor=actor, obj=annotation, action="edit", before=before, update_fields=["body", "replacement"],
            tag_ids=current_tags)
    inbox.notify_annotation(actor=actor, annotation=annotation, before=before["body"])
    return annotation


@transaction.atomic
def annotation_set_status(*, actor, annotation_id: int, version: int | None, resolved: bool) -> Annotation:
    """Resolve or reopen an annotation (any annotator may, as in a shared document)."""
    perms.require_annotate(actor)
    annotation = lock_annotation(annotation_id)
    check_version(annotation, version, {"status": "resolved" if resolved else "open"})
    target = AnnotationStatus.RESOLVED if resolved else AnnotationStatus.OPEN
    if annotation.status == target:
        return annotation
    before = annotation_state(annotation)
    annotation.status = target
    annotation.resolved_by = actor if resolved else None
    annotation.resolved_at = timezone.now() if resolved else None
    commit(actor=actor, obj=annotation, action="resolve" if resolved else "reopen", before=before)
    return annotation


@transaction.atomic
def annotation_delete(*, actor, annotation_id: int, version: int | None) -> Annotation:
    """Soft-delete one's own annotation; ``annotation_restore`` undoes it."""
    annotation = lock_annotation(annotation_id)
    perms.require_author(actor, annotation)
    check_version(annotation, version, {"deleted": True})
    if annotation.deleted_at is not None:
        return annotation
    before = annotation_state(annotation)
    annotation.deleted_at = timezone.now()
    commit(actor=actor, obj=annotation, action="delete", before=before)
    return annotation


@transaction.atomic
def annotation_restore(*, actor, annotation_id: int) -> Annotation:
    """Undo the soft delete of one's own annotation."""
    annotation = lock_annotation(annotation_id)
    perms.require_author(actor, annotation)
    if annotation.deleted_at is None:
        return annotation
    before = annotation_state(annotation)
    annotation.deleted_at = None
    commit(actor=actor, obj=annotation, action="undo_delete", before=before)
    return annotation


# --- thread replies -------------------------------------------------------------------------------------------------


@transaction.atomic
def reply_create(*, actor, annotation_id: int, body: str) -> AnnotationReply:
    perms.require_annotate(actor)
    annotation = lock_annotation(annotation_id)
    if annotation.deleted_at is not None:
        raise ValidationError({"annotation": "This annotation was deleted."})
    reply = AnnotationReply.objects.create(annotation=annotation, author=actor, body=clean_body(body, required=True))
    touch(annotation.pk)
    audit(actor=actor, action="reply", obj=reply, after=reply_state(reply))
    inbox.notify_reply(actor=actor, reply=reply)
    return reply


def _lock_reply(reply_id: int) -> AnnotationReply:
    try:
        return AnnotationReply.objects.select_for_update().select_related("annotation").get(pk=reply_id)
    except AnnotationReply.DoesNotExist:
        raise ValidationError({"reply": f"Reply {reply_id} does not exist."}) from None


@transaction.atomic
def reply_update(*, actor, reply_id: int, version: int | None, body: str) -> AnnotationReply:
    reply = _lock_reply(reply_id)
    perms.require_author(actor, reply)
    check_version(reply, version, {"body": body})
    before = reply_state(reply)
    reply.body = clean_body(body, required=True)
    commit(actor=actor, obj=reply, action="edit", before=before)
    inbox.notify_reply(actor=actor, reply=reply, before=before["body"])
    return reply


@transaction.atomic
def reply_delete(*, actor, reply_id: int, undo: bool = False) -> AnnotationReply:
    """Soft-delete one's own reply, or (``undo``) bring it back."""
    reply = _lock_reply(reply_id)
    perms.require_author(actor, reply)
    before = reply_state(reply)
    reply.deleted_at = None if undo else timezone.now()
    commit(actor=actor, obj=reply, action="undo_delete" if undo else "delete", before=before)
    return reply


