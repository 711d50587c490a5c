"""Writes of semantic recall: feedback items follow their sources.

* ``feedback_item_sync_for_annotation`` / ``feedback_items_sync_for_feedback_events`` build or update the items of
  annotations and of end-user feedback events (set-based for events); ``feedback_items_sync_for_import`` does the
  latter for everything an import batch created or changed. Workers run them after the feedback's commit
  (``annotations.recall.receivers``), and they enqueue the embed task after theirs.

Vectors of the items' text: ``annotations.recall.embedding``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import BooleanField as BooleanOutput
from django.db.models import Exists, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.utils import timezone

from annotations.models import (
    Annotation,
    AnnotationKind,
    AnnotationStatus,
    Correction,
    CorrectionStatus,
    Tag,
)
from annotations.recall import text as item_text
from annotations.recall.models import FeedbackItem, SourceKind
from sessions.models import Conversation, FeedbackEvent, FeedbackKind, Turn, TurnRole

logger = logging.getLogger(__name__)

#: Feedback events synced per query.
SYNC_CHUNK = 2_000

#: Fields an item sync writes (besides the source keys).
ITEM_FIELDS = (
    "source", "conversation_id", "turn_id", "conversation_source", "environment", "model_version", "user_role",
    "app_version", "occurred_at", "tag_ids", "kind", "is_negative", "is_resolved", "is_active", "text", "text_hash",
)  # fmt: skip


def _user_query() -> Subquery:
    """The content of the last user turn before OuterRef("turn") in its conversation (what the reply answered)."""
    return Subquery(
        Turn.objects.filter(
            conversation_id=OuterRef("conversation_id"), position__lt=OuterRef("turn__position"), role=TurnRole.USER
        )
        .order_by("-position")
        .values("content")[:1]
    )


def _approved_correction() -> Exists:
    return Exists(Correction.objects.filter(turn_id=OuterRef("turn_id"), status=CorrectionStatus.APPROVED))


def _exchange(turn: Turn, query: str | None) -> tuple[str, str]:
    """(user query, reply) around ``turn``: a reply is answered to the user turn before it."""
    if turn.role == TurnRole.USER:
        return turn.content, ""
    return query or "", turn.content


# --- items ----------------------------------------------------------------------------------------------------------


def _annotation_values(annotation: Annotation, *, query: str | None, approved: bool) -> dict[str, Any]:
    turn, conv = annotation.turn, annotation.conversation
    tags = sorted(annotation.tags.all(), key=lambda t: t.name)
    query_text, reply = _exchange(turn, query)
    text = item_text.annotation_text(
        tag_names=[t.name for t in tags],
        body=annotation.body,
        exact=annotation.exact,
        replacement=annotation.replacement,
        is_suggestion=annotation.kind == AnnotationKind.SUGGESTION,
        query=query_text,
        reply=reply,
        start=annotation.start,
        end=annotation.end,
    )
    return {
        "source": SourceKind.ANNOTATION,
        "conversation_id": annotation.conversation_id,
        "turn_id": annotation.turn_id,
        "conversation_source": conv.source,
        "environment": conv.environment,
        "model_version": turn.model_version or conv.model_version,
        "user_role": conv.user_role,
        "app_version": conv.app_version,
        "occurred_at": annotation.created_at,
        "tag_ids": [t.pk for t in tags],
        "kind": annotation.kind,
        # A reviewer annotates what is wrong (or could be better).
        "is_negative": True,
        "is_resolved": annotation.status == AnnotationStatus.RESOLVED or approved,
        "is_active": annotation.deleted_at is None,
        "text": text,
        "text_hash": item_text.text_hash(text),
    }


@transaction.atomic
def feedback_item_sync_for_annotation(*, annotation_id: int) -> FeedbackItem | None:
    """Create or update the item of annotation ``annotation_id``; a deleted annotation's item is deactivated (kept
    with its vectors, so an undo costs nothing); a vanished annotation has none. A changed text flags the item
    ``embedding_pending``. Returns the item (None when the annotation does not exist)."""
    annotation = (
        Annotation.objects.select_related("turn", "conversation")
        .prefetch_related("tags")
        .annotate(query_text=_user_query(), approved=_approved_correction())
        .filter(pk=annotation_id)
        .first()
    )
    if annotation is None:
        FeedbackItem.objects.filter(annotation_id=annotation_id).delete()
        return None
    values = _annotation_values(annotation, query=annotation.query_text, approved=annotation.approved)
    item = FeedbackItem.objects.select_for_update().filter(annotation_id=annotation_id).first()
    if item is None:
        item = FeedbackItem.objects.create(annotation_id=annotation_id, **values)
        changed_text = True
    else:
        changed_text = item.text_hash != values["text_hash"]
        changed = {k: v for k, v in values.items() if getattr(item, k) != v}
        if changed_text:
            changed["embedding_pending"] = True
        if changed:
            for k, v in changed.items():
                setattr(item, k, v)
            item.save(update_fields=[*changed, "updated_at"])
    return item


def _event_is_item(event: FeedbackEvent) -> bool:
    """End-user feedback worth remembering: it says something, or it is a negative signal."""
    return bool(event.is_negative or event.text.strip() or event.correction.strip())


def _tag_lookup() -> dict[str, int]:
    """Lower-cased tag names and slugs to tag ids, so "Too vague" as an end user's category means that tag."""
    lookup: dict[str, int] = {}
    for pk, name, slug in Tag.objects.values_list("pk", "name", "slug"):
        lookup[name.casefold()] = pk
        lookup[slug.casefold()] = pk
    return lookup


def _event_values(event: FeedbackEvent, *, tags: dict[str, int]) -> dict[str, Any]:
    turn, conv = event.turn, event.conversation
    query, reply = _exchange(turn, event.query_text)  # type: ignore[attr-defined]
    try:
        kind_label = FeedbackKind(event.kind).label
    except ValueError:
        kind_label = event.kind
    text = item_text.feedback_event_text(
        kind_label=kind_label,
        rating=event.rating,
        categories=event.categories,
        text=event.text,
        correction=event.correction,
        query=query,
        reply=reply,
    )
    tag_ids = sorted({tags[c.casefold()] for c in event.categories if c.casefold() in tags})
    return {
        "source": SourceKind.FEEDBACK_EVENT,
        "conversation_id": event.conversation_id,
        "turn_id": event.turn_id,
        "conversation_source": conv.source,
        "environment": conv.environment,
        "model_version": turn.model_version or conv.model_version,
        "user_role": conv.user_role,
        "app_version": conv.app_version,
        "occurred_at": event.created_at or turn.created_at or conv.started_at,
        "tag_ids": tag_ids,
        "kind": event.kind,
        "is_negative": event.is_negative,
        "is_resolved": event.approved,  # type: ignore[attr-defined]
        "is_active": True,
        "text": text,
        "text_hash": item_text.text_hash(text),
    }


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    #: Items whose text is new or changed (they need a vector).
    to_embed: int = 0

    def __iadd__(self, other: SyncResult) -> SyncResult:
        self.created += other.created
        self.updated += other.updated
        self.deleted += other.deleted
        self.to_embed += other.to_embed
        return self


def _sync_events_chunk(event_ids: Sequence[int], tags: dict[str, int]) -> SyncResult:
    result = SyncResult()
    events = list(
        FeedbackEvent.objects.filter(pk__in=event_ids)
        .select_related("turn", "conversation")
        .annotate(query_text=_user_query(), approved=_approved_correction())
    )
    existing = {
        item.feedback_event_id: item
        for item in FeedbackItem.objects.filter(feedback_event_id__in=event_ids).only(
            "id", "feedback_event_id", "embedding_pending", *ITEM_FIELDS
        )
    }
    gone = [pk for pk in existing if pk not in {e.pk for e in events}]
    new: list[FeedbackItem] = []
    changed: list[FeedbackItem] = []
    drop: list[int] = []
    for event in events:
        item = existing.get(event.pk)
        if not _event_is_item(event):
            if item is not None:
                drop.append(item.pk)
            continue
        values = _event_values(event, tags=tags)
        if item is None:
            new.append(FeedbackItem(feedback_event_id=event.pk, **values))
            result.to_embed += 1
        elif any(getattr(item, k) != v for k, v in values.items()):
            if item.text_hash != values["text_hash"]:
                result.to_embed += 1
                item.embedding_pending = True
            for k, v in values.items():
                setattr(item, k, v)
            item.updated_at = timezone.now()
            changed.append(item)
    if new:
        # ON CONFLICT: an item another sync created meanwhile is updated instead of failing the chunk.
        FeedbackItem.objects.bulk_create(
            new, update_conflicts=True, unique_fields=["feedback_event"],
            update_fields=[*ITEM_FIELDS, "embedding_pending", "updated_at"],
        )
    if changed:
        FeedbackItem.objects.bulk_update(changed, [*ITEM_FIELDS, "embedding_pending", "updated_at"])
    if drop or gone:
        result.deleted = FeedbackItem.objects.filter(
            Q(pk__in=drop) | Q(feedback_event_id__in=gone)
        ).delete()[1].get(FeedbackItem._meta.label, 0)
    result.created, result.updated = len(new), len(changed)
    return result


@transaction.atomic
def feedback_items_sync_for_feedback_events(*, event_ids: Iterable[int]) -> SyncResult:
    """Create, update or remove the items of feedback events ``event_ids`` (set-based: a few queries per
    ``SYNC_CHUNK`` events). An event becomes an item when it is negative or carries text or a correction; the item
    goes when the event no longer qualifies or no longer exists. ``to_embed`` counts the items whose text changed."""
    ids = sorted({int(pk) for pk in event_ids})
    tags = _tag_lookup()
    result = SyncResult()
    for i in range(0, len(ids), SYNC_CHUNK):
        result += _sync_events_chunk(ids[i : i + SYNC_CHUNK], tags)
    return result


def feedback_items_sync_for_import(*, batch_id: int) -> SyncResult:
    """Sync the items of everything import batch ``batch_id`` created or changed: the feedback events (and the
    annotations, whose exchange text may have changed) of the conversations it last wrote. Each chunk commits on
    its own; running it again changes nothing."""
    conversations = Conversation.objects.filter(last_import_id=batch_id).values("pk")
    result = SyncResult()
    last = 0
    while True:
        ids = list(
            FeedbackEvent.objects.filter(conversation_id__in=conversations, pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:SYNC_CHUNK]
        )
        if not ids:
            break
        result += feedback_items_sync_for_feedback_events(event_ids=ids)
        last = ids[-1]
    # Items of events the import deleted went with them (on_delete CASCADE). Annotations on re-imported turns:
    annotation_ids = Annotation.objects.filter(conversation_id__in=conversations).values_list("pk", flat=True)
    for annotation_id in annotation_ids.iterator():
        if _waits_for_vector(feedback_item_sync_for_annotation(annotation_id=annotation_id)):
            result.to_embed += 1
    return result


def _waits_for_vector(item: FeedbackItem | None) -> bool:
    return item is not None and item.is_active and item.embedding_pending


@transaction.atomic
def feedback_items_refresh_resolution(*, turn_ids: Iterable[int]) -> int:
    """Recompute ``is_resolved`` of the items on ``turn_ids`` (after a correction was approved or went back to
    draft). Returns how many items changed."""
    resolved = ExpressionWrapper(
        Q(Exists(Annotation.objects.filter(pk=OuterRef("annotation_id"), status=AnnotationStatus.RESOLVED)))
        | Q(_approved_correction()),
        output_field=BooleanOutput(),
    )
    items = FeedbackItem.objects.filter(turn_id__in=list(turn_ids))
    stale = list(
        items.annotate(now_resolved=resolved).exclude(is_resolved=F("now_resolved")).values_list("pk", flat=True)
    )
    if not stale:
        return 0
    return FeedbackItem.objects.filter(pk__in=stale).update(is_resolved=resolved, updated_at=timezone.now())


def feedback_sync(*, annotation_id: int | None = None, turn_id: int | None = None) -> bool:
    """What ``recall.sync_feedback`` runs: the item of ``annotation_id``, then the resolution of ``turn_id``'s
    items; each step commits on its own and is idempotent, so a retried task redoes nothing wrong. True when the
    annotation's item now waits for a vector."""
    waits = False
    if annotation_id is not None:
        waits = _waits_for_vector(feedback_item_sync_for_annotation(annotation_id=annotation_id))
    if turn_id is not None:
        feedback_items_refresh_resolution(turn_ids=[turn_id])
    return waits
