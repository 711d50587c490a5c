"""Writes of a turn's corrected reply: deciding suggested edits, saving and approving the correction, and moving
annotations onto a changed reply text (re-anchoring)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations import anchoring
from annotations import permissions as perms
from annotations.events import feedback_changed
from annotations.models import (
    AnchorState,
    Annotation,
    AnnotationStatus,
    Correction,
    CorrectionStatus,
    SuggestionState,
)
from annotations.services.versioning import (
    annotation_state,
    audit,
    check_version,
    clean_body,
    commit,
    correction_state,
    lock_annotation,
)
from sessions.models import Turn, TurnRole

# --- suggestions and corrections ------------------------------------------------------------------------------------


def _back_to_draft(correction: Correction) -> None:
    """A changed text needs approving again."""
    if correction.status == CorrectionStatus.APPROVED:
        correction.status = CorrectionStatus.DRAFT
        correction.approved_by = None
        correction.approved_at = None


def _lock_or_start_correction(*, actor, turn: Turn) -> tuple[Correction, bool]:
    """The turn's correction, locked; created from the reply's text when it has none (True when created here).

    Insert-or-lock: two first writes of the same turn at once both find no row and both insert; the unique turn
    makes the second insert wait for the first transaction and then fail, inside its own savepoint, and that writer
    locks the row the first one committed instead (its caller then checks the version it edited, as for any edit).
    """
    correction = Correction.objects.select_for_update().filter(turn=turn).first()
    if correction is not None:
        return correction, False
    try:
        with transaction.atomic():
            correction = Correction.objects.create(
                conversation_id=turn.conversation_id,
                turn=turn,
                text=turn.content,
                base_hash=anchoring.text_hash(turn.content),
                created_by=actor,
                updated_by=actor,
            )
    except IntegrityError:
        correction = Correction.objects.select_for_update().filter(turn=turn).first()
        if correction is None:  # not the race on the turn: another constraint refused the row
            raise
        return correction, False
    audit(actor=actor, action="create", obj=correction, after=correction_state(correction))
    return correction, True


@transaction.atomic
def suggestion_decide(*, actor, annotation_id: int, version: int | None, accept: bool) -> Annotation:
    """Accept (apply the replacement to the turn's corrected reply) or reject a pending suggestion.

    Accepting finds the suggested span in the current corrected text with the same anchoring as highlights (position,
    quote, fuzzy quote), so suggestions compose in any order; if the span is no longer there the accept is refused
    with a ValidationError and nothing changes. An approved correction that changes goes back to draft.
    """
    perms.require_decide(actor)
    annotation = lock_annotation(annotation_id)
    if not annotation.is_suggestion:
        raise ValidationError({"annotation": "Only suggested edits can be accepted or rejected."})
    if annotation.deleted_at is not None:
        raise ValidationError({"annotation": "This suggestion was deleted."})
    check_version(annotation, version, {"suggestion_state": "accepted" if accept else "rejected"})
    if annotation.suggestion_state != SuggestionState.PENDING:
        raise ValidationError({"annotation": f"This suggestion was already {annotation.suggestion_state}."})
    before = annotation_state(annotation)
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
        c_before = correction_state(correction)
        correction.text = correction.text[: place.start] + annotation.replacement + correction.text[place.end :]
        _back_to_draft(correction)
        correction.updated_by = actor
        # Announced below with the suggestion: one event for the item and its turn.
        commit(actor=actor, obj=correction, action="apply_suggestion", before=c_before, announce=False,
                suggestion=annotation.pk)
    annotation.suggestion_state = SuggestionState.ACCEPTED if accept else SuggestionState.REJECTED
    annotation.decided_by = actor
    annotation.decided_at = timezone.now()
    annotation.status = AnnotationStatus.RESOLVED
    annotation.resolved_by = actor
    annotation.resolved_at = annotation.decided_at
    commit(actor=actor, obj=annotation, action="accept" if accept else "reject", before=before, announce=False)
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
    rationale = clean_body(rationale, field="rationale")
    correction = Correction.objects.select_for_update().filter(turn=turn).first()
    if correction is None:
        if version not in (None, 0, "0", ""):
            raise ValidationError({"version": "This correction does not exist yet."})
        correction, created = _lock_or_start_correction(actor=actor, turn=turn)
        if not created:  # another expert's first save won the race: theirs is an edit this one has not seen
            check_version(correction, version, {"text": text, "rationale": rationale})
    else:
        check_version(correction, version, {"text": text, "rationale": rationale})
    before = correction_state(correction)
    if correction.text == text and correction.rationale == rationale:
        return correction
    correction.text = text
    correction.rationale = rationale
    _back_to_draft(correction)
    correction.updated_by = actor
    commit(actor=actor, obj=correction, action="edit", before=before)
    return correction


@transaction.atomic
def correction_approve(*, actor, correction_id: int, version: int | None) -> Correction:
    """Move a correction from draft to approved (domain experts only; under four-eyes not by its author)."""
    perms.require_decide(actor)
    try:
        correction = Correction.objects.select_for_update().get(pk=correction_id)
    except Correction.DoesNotExist:
        raise ValidationError({"correction": f"Correction {correction_id} does not exist."}) from None
    check_version(correction, version, {"status": "approved"})
    if correction.status == CorrectionStatus.APPROVED:
        return correction
    perms.require_second_approver(actor, correction)
    before = correction_state(correction)
    correction.status = CorrectionStatus.APPROVED
    correction.approved_by = actor
    correction.approved_at = timezone.now()
    commit(actor=actor, obj=correction, action="approve", before=before)
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
        before = annotation_state(annotation, [])
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
        after = annotation_state(annotation, [])
        if after != before:
            audit(actor=None, action="reanchor" if annotation.anchor_state == AnchorState.ANCHORED else "orphan",
                   obj=annotation, before=before, after=after)
        changed += 1
    return changed
