"""The steps every versioned write of the review workspace shares: lock the row, refuse a stale version with
``Conflict``, bump the version, save, record an ``AuditEvent`` with the before and after states, and announce the
change (``commit``). The writes themselves live beside this module, one module per job."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import ValidationError
from django.db.models import OuterRef
from django.utils import timezone

from annotations import selectors
from annotations.events import feedback_changed
from annotations.models import Annotation, AnnotationReply, AuditEvent, Correction, Tag

MAX_BODY_CHARS = 10_000


class Conflict(Exception):
    """A save named a version that is no longer current. ``current`` is the stored object (theirs), untouched."""

    def __init__(self, current: Any, *, yours: dict[str, Any]) -> None:
        super().__init__(f"{type(current).__name__} #{current.pk} changed since you opened it")
        self.current = current
        self.yours = yours


# --- snapshots for the audit trail ----------------------------------------------------------------------------------


def annotation_state(annotation: Annotation, tag_ids: Iterable[int] | None = None) -> dict[str, Any]:
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


def reply_state(reply: AnnotationReply) -> dict[str, Any]:
    return {"body": reply.body, "deleted": reply.deleted_at is not None, "version": reply.version}


def correction_state(correction: Correction) -> dict[str, Any]:
    return {
        "text": correction.text,
        "rationale": correction.rationale,
        "status": correction.status,
        "version": correction.version,
    }


def audit(*, actor, action: str, obj, before=None, after=None) -> AuditEvent:
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


def audit_conversation(*, actor, conversation_id: int, action: str, object_type: str, object_id: int,
                       before=None, after=None) -> AuditEvent:
    """An audit event about something other than an annotation or correction (gold scores, an adjudication)."""
    return AuditEvent.objects.create(
        conversation_id=conversation_id, actor=actor if actor is not None and actor.is_authenticated else None,
        action=action, object_type=object_type, object_id=object_id, before=before, after=after,
    )


# --- validation helpers ---------------------------------------------------------------------------------------------


def clean_body(body: str, *, field: str = "body", required: bool = False) -> str:
    body = (body or "").strip()
    if required and not body:
        raise ValidationError({field: "Write something first."})
    if len(body) > MAX_BODY_CHARS:
        raise ValidationError({field: f"At most {MAX_BODY_CHARS} characters ({len(body)} given)."})
    return body


def active_tags(tag_ids: Iterable[int]) -> list[Tag]:
    wanted = {int(t) for t in tag_ids}
    tags = list(Tag.objects.filter(pk__in=wanted, is_active=True))
    missing = wanted - {t.pk for t in tags}
    if missing:
        raise ValidationError({"tags": f"Unknown or inactive tag id(s): {', '.join(map(str, sorted(missing)))}."})
    return tags


def lock_annotation(annotation_id: int) -> Annotation:
    """The annotation, locked (``SELECT ... FOR UPDATE``), with its tag ids (``tag_pk_list``) and its reply thread
    (``thread_rows``) read in the same query: the audit snapshots, and then the card rendered from the returned
    instance, use them without reading them again. The thread read under the lock is the one the transaction commits
    with, since every reply change also updates the annotation row (``touch``) and so waits for this lock."""
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


def check_version(obj, version: int | None, yours: dict[str, Any]) -> None:
    if version is None or int(version) != obj.version:
        raise Conflict(obj, yours=yours)


def state(obj, tag_ids: Iterable[int] | None = None) -> dict[str, Any]:
    if isinstance(obj, Annotation):
        return annotation_state(obj, tag_ids)
    if isinstance(obj, AnnotationReply):
        return reply_state(obj)
    return correction_state(obj)


def commit(*, actor, obj, action: str, before: dict[str, Any], update_fields: list[str] | None = None,
            tag_ids: Iterable[int] | None = None, announce: bool = True, **after_extra: Any) -> None:
    """The end of every versioned change (the caller has locked ``obj`` and checked its version): bump the version,
    save, audit the before and after states, and tell what changed: feedback on an annotation or on a turn's
    correction (``feedback_changed``), or thread activity on the reply's annotation."""
    obj.version += 1
    obj.save(update_fields=[*update_fields, "version", "updated_at"] if update_fields else None)
    audit(actor=actor, action=action, obj=obj, before=before, after={**state(obj, tag_ids), **after_extra})
    if isinstance(obj, AnnotationReply):
        touch(obj.annotation_id)
    elif announce and isinstance(obj, Correction):
        feedback_changed.send(sender=Correction, annotation_id=None, turn_id=obj.turn_id)
    elif announce:
        feedback_changed.send(sender=Annotation, annotation_id=obj.pk, turn_id=None)


def touch(annotation_id: int) -> None:
    # Thread activity moves the annotation's updated_at (what "changes since" polls) but not its version: a reply
    # does not conflict with an edit of the annotation's own text.
    Annotation.objects.filter(pk=annotation_id).update(updated_at=timezone.now())
