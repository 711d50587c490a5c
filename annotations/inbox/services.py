"""Writes of the inbox: the items the review services and the feature apps create, and marking them read.

The review services call ``notify_annotation`` / ``notify_reply`` inside their transaction, triage calls
``notify_routed`` and curation ``notify_examples_proposed``: an item exists exactly when the change that made it was
committed. Nobody is told about their own doing, and a user is told once per change (a mention in a reply to their own
thread is a mention, not also a reply).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from annotations.inbox import mentions
from annotations.inbox.models import Notification, NotificationKind
from annotations.models import Annotation, AnnotationReply, Correction
from feedbackhub import roles
from sessions.models import Conversation

EXCERPT_CHARS = 300
SUBJECT_CHARS = 200


def card_url(annotation: Annotation) -> str:
    """The review page, scrolled to and focusing the annotation's card."""
    return f"{reverse('annotations:review', args=[annotation.conversation_id])}#card-{annotation.pk}"


def _excerpt(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _subject(text: str) -> str:
    text = " ".join(str(text or "").split()) or "Untitled"
    return text if len(text) <= SUBJECT_CHARS else text[: SUBJECT_CHARS - 1] + "…"


def _active_users(usernames: Iterable[str]):
    return get_user_model().objects.filter(username__in=list(usernames), is_active=True)


def _about(annotation: Annotation) -> dict:
    conversation = Conversation.objects.only("title", "source", "external_id").get(pk=annotation.conversation_id)
    return {
        "conversation_id": annotation.conversation_id,
        "annotation": annotation,
        "subject": _subject(str(conversation)),
        "url": card_url(annotation),
    }


def _mentions_added(body: str, before: str | None) -> set[str]:
    new = mentions.mentioned(body)
    return new - mentions.mentioned(before) if before is not None and new else new


def notify_annotation(*, actor, annotation: Annotation, before: str | None = None) -> list[Notification]:
    """Tell the users ``annotation``'s body mentions (on an edit, ``before`` the old body: only those it adds)."""
    names = _mentions_added(annotation.body, before)
    if not names:
        return []
    about = _about(annotation)
    rows = [
        Notification(
            recipient=user, actor=actor, kind=NotificationKind.MENTION, excerpt=_excerpt(annotation.body), **about
        )
        for user in _active_users(names).exclude(pk=actor.pk)
    ]
    return Notification.objects.bulk_create(rows)


def notify_reply(*, actor, reply: AnnotationReply, before: str | None = None) -> list[Notification]:
    """Tell the users a reply mentions and, for a new reply (no ``before``), everyone else in its thread: the
    annotation's author and the authors of the thread's other replies."""
    annotation = reply.annotation
    mentioned = list(_active_users(_mentions_added(reply.body, before)).exclude(pk=actor.pk))
    others = []
    if before is None:
        in_thread = Q(pk=annotation.author_id) | Q(
            pk__in=AnnotationReply.objects.filter(annotation_id=annotation.pk, deleted_at__isnull=True).values(
                "author_id"
            )
        )
        told = [user.pk for user in mentioned] + [actor.pk]
        others = list(get_user_model().objects.filter(in_thread, is_active=True).exclude(pk__in=told))
    if not mentioned and not others:
        return []
    about = {**_about(annotation), "reply": reply, "excerpt": _excerpt(reply.body)}
    rows = [Notification(recipient=user, actor=actor, kind=NotificationKind.MENTION, **about) for user in mentioned]
    rows += [Notification(recipient=user, actor=actor, kind=NotificationKind.REPLY, **about) for user in others]
    return Notification.objects.bulk_create(rows)


def notify_routed(*, actor, cluster, url: str, assignee=None) -> list[Notification]:
    """Tell the users a triage cluster was routed to: its assignee when routing named one, else every active member
    of the group it was routed to. ``cluster`` has ``pk``, ``title`` and ``routed_group``; ``url`` is its page."""
    if assignee is not None:
        users = [assignee] if assignee.is_active else []
    else:
        group: Group | None = cluster.routed_group
        users = list(get_user_model().objects.filter(groups=group, is_active=True)) if group else []
    rows = [
        Notification(
            recipient=user,
            actor=actor,
            kind=NotificationKind.ROUTED,
            subject=_subject(cluster.title),
            url=url,
            object_id=cluster.pk,
        )
        for user in users
        if user.pk != actor.pk
    ]
    return Notification.objects.bulk_create(rows)


def notify_examples_proposed(
    *, actor, dataset: str, url: str, examples: Iterable[tuple[int, int | None]]
) -> list[Notification]:
    """Tell each domain expert about the examples just proposed to dataset ``dataset`` (its page at ``url``) that they
    may approve: every one but those of corrections they wrote. ``examples``: (example id, correction id) pairs. One
    item per expert and proposal, linking to the first such example."""
    examples = sorted(examples)
    if not examples:
        return []
    author_of = dict(Correction.objects.filter(pk__in={c for _, c in examples if c}).values_list("pk", "created_by_id"))
    experts = get_user_model().objects.filter(groups__name=roles.DOMAIN_EXPERT, is_active=True).exclude(pk=actor.pk)
    rows = []
    for expert in experts.distinct():
        theirs = [e for e, c in examples if author_of.get(c) != expert.pk]
        if not theirs:
            continue
        first = theirs[0]
        what = "1 example" if len(theirs) == 1 else f"{len(theirs)} examples"
        rows.append(
            Notification(
                recipient=expert,
                actor=actor,
                kind=NotificationKind.APPROVAL,
                object_id=first,
                subject=_subject(f"{what} proposed for {dataset}"),
                # The dataset page pages by id: starting after the one before puts the first example at the top.
                url=f"{url}?status=proposed&after={first - 1}#example-{first}",
            )
        )
    return Notification.objects.bulk_create(rows)


# --- the recipient's own changes -------------------------------------------------------------------------------------


@transaction.atomic
def notification_read(*, actor, notification_id: int, read: bool = True) -> Notification:
    """Mark one of one's own items read (or unread again). Someone else's item: as if it did not exist."""
    item = Notification.objects.select_for_update().filter(pk=notification_id, recipient_id=actor.pk).first()
    if item is None:
        raise ValidationError({"notification": f"Item {notification_id} is not in your inbox."})
    if read != (item.read_at is not None):
        item.read_at = timezone.now() if read else None
        item.save(update_fields=["read_at"])
    return item


@transaction.atomic
def notifications_read_all(*, actor) -> int:
    """Mark every unread item of one's inbox read; returns how many."""
    return Notification.objects.filter(recipient_id=actor.pk, read_at__isnull=True).update(read_at=timezone.now())
