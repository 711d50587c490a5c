"""How the review workspace follows the conversations app (connected in ``AnnotationsConfig.ready()``): when the
stored text of turns changes (a re-import of an edited conversation), a worker re-anchors the annotations on them,
or marks them orphaned, once the change is committed; and a conversation reviewers have started on is marked
reviewed in the conversation list; the list filters by rubric scores (``score``)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from annotations.events import feedback_changed
from annotations.models import Annotation, Tag
from annotations.selectors import forget_taxonomy, score_filter_condition
from annotations.tasks import reanchor_turns
from feedbackhub.outbox import enqueue_on_commit
from sessions.events import turn_texts_changed
from sessions.models import Turn
from sessions.selectors.filters import ExtraFilter, register_filter
from sessions.services import conversations_mark_reviewed

register_filter(ExtraFilter(name="score", label="Rubric score", placeholder="helpfulness<=2, tone=rude",
                            condition=score_filter_condition))

# The taxonomy is cached (annotations.selectors.all_tags); any tag write drops the copy.
post_save.connect(forget_taxonomy, sender=Tag, dispatch_uid="annotations.taxonomy.save")
post_delete.connect(forget_taxonomy, sender=Tag, dispatch_uid="annotations.taxonomy.delete")


@receiver(turn_texts_changed, dispatch_uid="annotations.turn_texts_changed")
def reanchor_changed_turns(sender, *, turn_ids: list[int], **_) -> None:
    """Only turns that carry annotations need a worker; the rest of a large re-import costs one query."""
    annotated = sorted(set(Annotation.objects.filter(turn_id__in=turn_ids).values_list("turn_id", flat=True)))
    if annotated:
        enqueue_on_commit(reanchor_turns, annotated)


@receiver(feedback_changed, dispatch_uid="annotations.mark_reviewed")
def mark_conversation_reviewed(
    sender, *, annotation_id: int | None = None, turn_id: int | None = None, created: bool = False, **_
) -> None:
    """A new comment, tag or suggestion, or a correction, marks its conversation reviewed (one UPDATE; edits of an
    existing annotation cost nothing)."""
    if annotation_id is not None and created:
        conversation_ids = Annotation.objects.filter(pk=annotation_id).values_list("conversation_id", flat=True)
    elif turn_id is not None and annotation_id is None:
        conversation_ids = Turn.objects.filter(pk=turn_id).values_list("conversation_id", flat=True)
    else:
        return
    conversations_mark_reviewed(conversation_ids=conversation_ids)
