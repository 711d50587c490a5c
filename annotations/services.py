"""Writes of the review workspace. Every function checks permissions, validates its input, records an AuditEvent
and, for objects that carry a ``version``, refuses a save based on an older version with ``Conflict``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef
from django.utils import timezone

from annotations import anchoring, selectors
from annotations import permissions as perms
from annotations.events import feedback_changed
from annotations.models import (
    AnchorState,
    Annotation,
    AnnotationKind,
    AnnotationReply,
    AnnotationStatus,
    AuditEvent,
    Correction,
    CorrectionStatus,
    SuggestionState,
    Tag,
)
from sessions.models import Turn, TurnRole

MAX_BODY_CHARS = 10_000


class Conflict(Exception):
    """A save named a version that is no longer current. ``current`` is the stored object (theirs), untouched."""

    def __init__(self, current: Any, *, yours: dict[str, Any]) -> None:
        super().__init__(f"{type(current).__name__} #{current.pk} changed since you opened it")
        self.current = current
        self.yours = yours


# --- snapshots for the audit trail ----------------------------------------------------------------------------------


def _annotation_state(annotation: Annotation, tag_ids: Iterable[int] | None = None) -> dict[str, Any]:
    if tag_ids is None:
        tag_ids = getattr(annotation, "tag_pk_list", None)
    if tag_ids is None:
        tag_ids = [t.pk for t in annotation.tags.all()]
    return {
        "kind": annotation.kind,
        "body": annotation.body,
        "tags": sorted(tag_ids),
        "status": annotation.status,
        "exact": annotation.exact,
        "start": annotation.start,
        "end": annotation.end,
        "anchor_state": annotation.anchor_state,
        "replacement": annotation.replacement,
        "suggestion_state": annotation.suggestion_state,
        "deleted": annotation.deleted_at is not None,
        "version": annotation.version,
    }


def _reply_state(reply: AnnotationReply) -> dict[str, Any]:
    return {"body": reply.body, "deleted": reply.deleted_at is not None, "version": reply.version}


def _correction_state(correction: Correction) -> dict[str, Any]:
    return {
        "text": correction.text,
        "rationale": correction.rationale,
        "status": correction.status,
        "version": correction.version,
    }


def _audit(*, actor, action: str, obj, before=None, after=None) -> AuditEvent:
    annotation = correction = None
    if isinstance(obj, Annotation):
        annotation = obj
    elif isinstance(obj, AnnotationReply):
        annotation = obj.annotation
    elif isinstance(obj, Correction):
        correction = obj
    conversation_id = (annotation or correction).conversation_id  # type: ignore[union-attr]
    return AuditEvent.objects.create(
        conversation_id=conversation_id,
        annotation=annotation,
        correction=correction,
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=obj.pk,
        before=before,
        after=after,
    )


# --- validation helpers ---------------------------------------------------------------------------------------------


def _clean_body(body: str, *, field: str = "body", required: bool = False) -> str:
    body = (body or "").strip()
    if required and not body:
        raise ValidationError({field: "Write something first."})
    if len(body) > MAX_BODY_CHARS:
        raise ValidationError({field: f"At most {MAX_BODY_CHARS} characters ({len(body)} given)."})
    return body


def _active_tags(tag_ids: Iterable[int]) -> list[Tag]:
    wanted = {int(t) for t in tag_ids}
    tags = list(Tag.objects.filter(pk__in=wanted, is_active=True))
    missing = wanted - {t.pk for t in tags}
    if missing:
        raise ValidationError({"tags": f"Unknown or inactive tag id(s): {', '.join(map(str, sorted(missing)))}."})
    return tags


def _lock_annotation(annotation_id: int) -> Annotation:
    """The annotation, locked (``SELECT ... FOR UPDATE``), with its tag ids (``tag_pk_list``) and its reply thread
    (``thread_rows``) read in the same query: the audit snapshots, and then the card rendered from the returned
    instance, use them without reading them again. The thread read under the lock is the one the transaction commits
    with, since every reply change also updates the annotation row (``_touch``) and so waits for this lock."""
    tag_ids = Annotation.tags.through.objects.filter(annotation_id=OuterRef("pk")).order_by("id").values("tag_id")
    annotation = (
        Annotation.objects.select_for_update(of=("self",))
        .annotate(tag_pk_list=ArraySubquery(tag_ids), thread_rows=selectors.thread_rows())
        .filter(pk=annotation_id)
        .first()
    )
    if annotation is None:
        raise ValidationError({"annotation": f"Annotation {annotation_id} does not exist."})
    return annotation


def _check_version(obj, version: int | None, yours: dict[str, Any]) -> None:
    if version is None or int(version) != obj.version:
        raise Conflict(obj, yours=yours)


def _state(obj, tag_ids: Iterable[int] | None = None) -> dict[str, Any]:
    if isinstance(obj, Annotation):
        return _annotation_state(obj, tag_ids)
    if isinstance(obj, AnnotationReply):
        return _reply_state(obj)
    return _correction_state(obj)


def _commit(*, actor, obj, action: str, before: dict[str, Any], update_fields: list[str] | None = None,
            tag_ids: Iterable[int] | None = None, announce: bool = True, **after_extra: Any) -> None:
    """The end of every versioned change (the caller has locked ``obj`` and checked its version): bump the version,
    save, audit the before and after states, and tell what changed: feedback on an annotation or on a turn's
    correction (``feedback_changed``), or thread activity on the reply's annotation."""
    obj.version += 1
    obj.save(update_fields=[*update_fields, "version", "updated_at"] if update_fields else None)
    _audit(actor=actor, action=action, obj=obj, before=before, after={**_state(obj, tag_ids), **after_extra})
    if isinstance(obj, AnnotationReply):
        _touch(obj.annotation_id)
    elif announce and isinstance(obj, Correction):
        feedback_changed.send(sender=Correction, annotation_id=None, turn_id=obj.turn_id)
    elif announce:
        feedback_changed.send(sender=Annotation, annotation_id=obj.pk, turn_id=None)


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
) -> Annotation:
    """Create a comment or suggested edit on ``turn`` (an assistant turn), on a span or (no ``start``) the whole reply.

    The span is validated against the current turn text: ``exact`` must be ``text[start:end]`` in code points and
    ``text_hash`` the sha256 of that text. A comment needs a body or a tag; a suggestion needs a span.
    """
    perms.require_annotate(actor)
    if turn.role != TurnRole.ASSISTANT:
        raise ValidationError({"turn": "Only assistant replies can be annotated."})
    if kind not in AnnotationKind.values:
        raise ValidationError({"kind": f"Unknown kind {kind!r}."})
    body = _clean_body(body)
    tags = _active_tags(tag_ids)
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
        conversation_id=turn.conversation_id, turn=turn, author=actor, kind=kind, body=body, **fields
    )
    if tags:
        annotation.tags.set(tags)
    annotation.tag_pk_list = [t.pk for t in tags]  # type: ignore[attr-defined]
    annotation.thread_rows = []  # type: ignore[attr-defined]  # a new annotation has no thread yet
    _audit(actor=actor, action="create", obj=annotation, after=_annotation_state(annotation))
    feedback_changed.send(sender=Annotation, annotation_id=annotation.pk, turn_id=None)
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
    annotation = _lock_annotation(annotation_id)
    perms.require_author(actor, annotation)
    yours = {"body": body, "replacement": replacement}
    if annotation.deleted_at is not None:
        raise ValidationError({"annotation": "This annotation was deleted; undo the delete first."})
    _check_version(annotation, version, yours)
    current_tags = list(annotation.tag_pk_list)  # type: ignore[attr-defined]
    before = _annotation_state(annotation, current_tags)
    annotation.body = _clean_body(body)
    if tag_ids is not None:
        new_tags = _active_tags(tag_ids)
        annotation.tags.set(new_tags)
        current_tags = annotation.tag_pk_list = [t.pk for t in new_tags]  # type: ignore[attr-defined]
    if replacement is not None and annotation.is_suggestion:
        if annotation.suggestion_state != SuggestionState.PENDING:
            raise ValidationError({"replacement": "The suggestion was already decided."})
        annotation.replacement = replacement
    if not annotation.is_suggestion and not annotation.body and not current_tags:
        raise ValidationError({"body": "Write a comment or keep at least one tag."})
    # Only what an edit changes (updated_at moves with auto_now): a short UPDATE, not every column written back.
    _commit(actor=actor, obj=annotation, action="edit", before=before, update_fields=["body", "replacement"],
            tag_ids=current_tags)
    return annotation


@transaction.atomic
def annotation_set_status(*, actor, annotation_id: int, version: int | None, resolved: bool) -> Annotation:
    """Resolve or reopen an annotation (any annotator may, as in a shared document)."""
    perms.require_annotate(actor)
    annotation = _lock_annotation(annotation_id)
    _check_version(annotation, version, {"status": "resolved" if resolved else "open"})
    target = AnnotationStatus.RESOLVED if resolved else AnnotationStatus.OPEN
    if annotation.status == target:
        return annotation
    before = _annotation_state(annotation)
    annotation.status = target
    annotation.resolved_by = actor if resolved else None
    annotation.resolved_at = timezone.now() if resolved else None
    _commit(actor=actor, obj=annotation, action="resolve" if resolved else "reopen", before=before)
    return annotation


@transaction.atomic
def annotation_delete(*, actor, annotation_id: int, version: int | None) -> Annotation:
    """Soft-delete one's own annotation; ``annotation_restore`` undoes it."""
    annotation = _lock_annotation(annotation_id)
    perms.require_author(actor, annotation)
    _check_version(annotation, version, {"deleted": True})
    if annotation.deleted_at is not None:
        return annotation
    before = _annotation_state(annotation)
    annotation.deleted_at = timezone.now()
    _commit(actor=actor, obj=annotation, action="delete", before=before)
    return annotation


@transaction.atomic
def annotation_restore(*, actor, annotation_id: int) -> Annotation:
    """Undo the soft delete of one's own annotation."""
    annotation = _lock_annotation(annotation_id)
    perms.require_author(actor, annotation)
    if annotation.deleted_at is None:
        return annotation
    before = _annotation_state(annotation)
    annotation.deleted_at = None
    _commit(actor=actor, obj=annotation, action="undo_delete", before=before)
    return annotation


# --- thread replies -------------------------------------------------------------------------------------------------


def _touch(annotation_id: int) -> None:
    # Thread activity moves the annotation's updated_at (what "changes since" polls) but not its version: a reply
    # does not conflict with an edit of the annotation's own text.
    Annotation.objects.filter(pk=annotation_id).update(updated_at=timezone.now())


@transaction.atomic
def reply_create(*, actor, annotation_id: int, body: str) -> AnnotationReply:
    perms.require_annotate(actor)
    annotation = _lock_annotation(annotation_id)
    if annotation.deleted_at is not None:
        raise ValidationError({"annotation": "This annotation was deleted."})
    reply = AnnotationReply.objects.create(annotation=annotation, author=actor, body=_clean_body(body, required=True))
    _touch(annotation.pk)
    _audit(actor=actor, action="reply", obj=reply, after=_reply_state(reply))
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
    _check_version(reply, version, {"body": body})
    before = _reply_state(reply)
    reply.body = _clean_body(body, required=True)
    _commit(actor=actor, obj=reply, action="edit", before=before)
    return reply


@transaction.atomic
def reply_delete(*, actor, reply_id: int, undo: bool = False) -> AnnotationReply:
    """Soft-delete one's own reply, or (``undo``) bring it back."""
    reply = _lock_reply(reply_id)
    perms.require_author(actor, reply)
    before = _reply_state(reply)
    reply.deleted_at = None if undo else timezone.now()
    _commit(actor=actor, obj=reply, action="undo_delete" if undo else "delete", before=before)
    return reply


# --- suggestions and corrections ------------------------------------------------------------------------------------


def _back_to_draft(correction: Correction) -> None:
    """A changed text needs approving again."""
    if correction.status == CorrectionStatus.APPROVED:
        correction.status = CorrectionStatus.DRAFT
        correction.approved_by = None
        correction.approved_at = None


def _lock_or_start_correction(*, actor, turn: Turn) -> tuple[Correction, bool]:
    correction = Correction.objects.select_for_update().filter(turn=turn).first()
    if correction is not None:
        return correction, False
    correction = Correction.objects.create(
        conversation_id=turn.conversation_id,
        turn=turn,
        text=turn.content,
        base_hash=anchoring.text_hash(turn.content),
        created_by=actor,
        updated_by=actor,
    )
    _audit(actor=actor, action="create", obj=correction, after=_correction_state(correction))
    return correction, True


@transaction.atomic
def suggestion_decide(*, actor, annotation_id: int, version: int | None, accept: bool) -> Annotation:
    """Accept (apply the replacement to the turn's corrected reply) or reject a pending suggestion.

    Accepting finds the suggested span in the current corrected text with the same anchoring as highlights (position,
    quote, fuzzy quote), so suggestions compose in any order; if the span is no longer there the accept is refused
    with a ValidationError and nothing changes. An approved correction that changes goes back to draft.
    """
    perms.require_decide(actor)
    annotation = _lock_annotation(annotation_id)
    if not annotation.is_suggestion:
        raise ValidationError({"annotation": "Only suggested edits can be accepted or rejected."})
    if annotation.deleted_at is not None:
        raise ValidationError({"annotation": "This suggestion was deleted."})
    _check_version(annotation, version, {"suggestion_state": "accepted" if accept else "rejected"})
    if annotation.suggestion_state != SuggestionState.PENDING:
        raise ValidationError({"annotation": f"This suggestion was already {annotation.suggestion_state}."})
    before = _annotation_state(annotation)
    if accept:
        turn = Turn.objects.get(pk=annotation.turn_id)
        correction, _ = _lock_or_start_correction(actor=actor, turn=turn)
        sel = anchoring.Selector(annotation.exact, annotation.prefix, annotation.suffix,
                                 annotation.start or 0, annotation.end or 0)
        place = anchoring.anchor(correction.text, sel)
        if place is None:
            raise ValidationError(
                {"annotation": "The corrected reply no longer contains the text this suggestion replaces; "
                 "edit the corrected reply instead."}
            )
        c_before = _correction_state(correction)
        correction.text = correction.text[: place.start] + annotation.replacement + correction.text[place.end :]
        _back_to_draft(correction)
        correction.updated_by = actor
        # Announced below with the suggestion: one event for the item and its turn.
        _commit(actor=actor, obj=correction, action="apply_suggestion", before=c_before, announce=False,
                suggestion=annotation.pk)
    annotation.suggestion_state = SuggestionState.ACCEPTED if accept else SuggestionState.REJECTED
    annotation.decided_by = actor
    annotation.decided_at = timezone.now()
    annotation.status = AnnotationStatus.RESOLVED
    annotation.resolved_by = actor
    annotation.resolved_at = annotation.decided_at
    _commit(actor=actor, obj=annotation, action="accept" if accept else "reject", before=before, announce=False)
    # The item is resolved now; an accept may also have sent an approved correction back to draft.
    feedback_changed.send(sender=Annotation, annotation_id=annotation.pk, turn_id=annotation.turn_id)
    return annotation


@transaction.atomic
def correction_save(
    *, actor, turn: Turn, text: str, rationale: str = "", version: int | None = None
) -> Correction:
    """Write the whole corrected reply with a rationale (domain experts). ``version`` is required once it exists."""
    perms.require_decide(actor)
    if turn.role != TurnRole.ASSISTANT:
        raise ValidationError({"turn": "Only assistant replies have corrections."})
    if not (text or "").strip():
        raise ValidationError({"text": "The corrected reply cannot be empty."})
    rationale = _clean_body(rationale, field="rationale")
    correction = Correction.objects.select_for_update().filter(turn=turn).first()
    if correction is None:
        if version not in (None, 0, "0", ""):
            raise ValidationError({"version": "This correction does not exist yet."})
        correction, _ = _lock_or_start_correction(actor=actor, turn=turn)
    else:
        _check_version(correction, version, {"text": text, "rationale": rationale})
    before = _correction_state(correction)
    if correction.text == text and correction.rationale == rationale:
        return correction
    correction.text = text
    correction.rationale = rationale
    _back_to_draft(correction)
    correction.updated_by = actor
    _commit(actor=actor, obj=correction, action="edit", before=before)
    return correction


@transaction.atomic
def correction_approve(*, actor, correction_id: int, version: int | None) -> Correction:
    """Move a correction from draft to approved (domain experts only)."""
    perms.require_decide(actor)
    try:
        correction = Correction.objects.select_for_update().get(pk=correction_id)
    except Correction.DoesNotExist:
        raise ValidationError({"correction": f"Correction {correction_id} does not exist."}) from None
    _check_version(correction, version, {"status": "approved"})
    if correction.status == CorrectionStatus.APPROVED:
        return correction
    before = _correction_state(correction)
    correction.status = CorrectionStatus.APPROVED
    correction.approved_by = actor
    correction.approved_at = timezone.now()
    _commit(actor=actor, obj=correction, action="approve", before=before)
    return correction


# --- re-anchoring ---------------------------------------------------------------------------------------------------


@transaction.atomic
def annotations_reanchor(*, turn: Turn) -> int:
    """Re-anchor every span annotation on ``turn`` made on another version of its text (after a re-import or a
    redaction). Placed ones move to the new offsets and context; the rest become orphans. Returns how many changed."""
    current = anchoring.text_hash(turn.content)
    changed = 0
    stale = Annotation.objects.select_for_update().filter(turn=turn).exclude(text_hash=current)
    for annotation in stale:
        before = _annotation_state(annotation, [])
        if annotation.start is None:
            annotation.text_hash = current
        else:
            sel = anchoring.Selector(annotation.exact, annotation.prefix, annotation.suffix,
                                     annotation.start, annotation.end or annotation.start)
            place = anchoring.anchor(turn.content, sel)
            if place is None:
                annotation.anchor_state = AnchorState.ORPHANED
            else:
                new = anchoring.describe(turn.content, place.start, place.end)
                annotation.exact, annotation.prefix, annotation.suffix = new.exact, new.prefix, new.suffix
                annotation.start, annotation.end = new.start, new.end
                annotation.anchor_state = AnchorState.ANCHORED
            annotation.text_hash = current
        annotation.save(update_fields=["exact", "prefix", "suffix", "start", "end", "anchor_state", "text_hash",
                                       "updated_at"])
        after = _annotation_state(annotation, [])
        if after != before:
            _audit(actor=None, action="reanchor" if annotation.anchor_state == AnchorState.ANCHORED else "orphan",
                   obj=annotation, before=before, after=after)
        changed += 1
    return changed
