"""Writes of review queues: building one from a source, handing out items, completing and skipping them, and
adjudicating where reviewers disagree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.http import QueryDict
from django.utils import timezone

from annotations import reply_sources
from annotations import services as review
from annotations.models import Annotation, AnnotationKind, ScoreConfig, SuggestionState
from annotations.queues import permissions as perms
from annotations.queues import selectors, sql
from annotations.queues.models import Mode, QueueItem, ReplyScope, Review, ReviewQueue, ReviewState, SourceKind
from feedbackhub import roles
from sessions.forms import ConversationFilterForm
from sessions.models import SavedView
from sessions.selectors import FilterChoices, conversation_match_sql

# --- building ------------------------------------------------------------------------------------------------------


def filter_sql(query_string: str) -> tuple[str, list[Any]]:
    """The conversations a list filter (its query string) matches, as SQL; ValidationError naming the filter."""
    form = ConversationFilterForm(QueryDict(query_string), choices=FilterChoices())
    if not form.is_valid():
        raise ValidationError({"query_string": form.error_messages()})
    return conversation_match_sql(form.filters())


def replies_sql(queue: ReviewQueue) -> tuple[str, list[Any]]:
    """The replies the queue's source stands for (``turn_id, conversation_id, ord``)."""
    if queue.source_kind in (SourceKind.FILTER, SourceKind.SAVED_VIEW):
        query_string = queue.saved_view.query_string if queue.saved_view_id else queue.query_string
        match, params = filter_sql(query_string)
        return sql.conversation_replies_sql(match, params, last_only=queue.reply_scope == ReplyScope.LAST)
    source = reply_sources.SOURCES.get(queue.source_kind)
    if source is None:
        raise ValidationError({"source_kind": f"Unknown reply source {queue.source_kind!r}."})
    try:
        source_sql, params = source.turns_sql(queue.source_value)
    except ValueError as exc:
        raise ValidationError({"source_value": str(exc)}) from None
    return sql.source_replies_sql(source_sql, params)


def queue_fill(queue: ReviewQueue) -> int:
    """Add the source's replies that are not in the queue yet (up to ``QUEUE_MAX_ITEMS`` in all)."""
    room = settings.QUEUE_MAX_ITEMS - QueueItem.objects.filter(queue=queue).count()
    if room <= 0:
        return 0
    query, params = replies_sql(queue)
    added = sql.add_items(queue.pk, query, params, limit=room)
    ReviewQueue.objects.filter(pk=queue.pk).update(refreshed_at=timezone.now())
    return added


@dataclass
class QueueSpec:
    """What a moderator chooses when building a queue (cleaned by ``forms.QueueForm``)."""

    name: str
    source_kind: str = SourceKind.FILTER
    query_string: str = ""
    saved_view: SavedView | None = None
    source_value: str = ""
    mode: str = Mode.SNAPSHOT
    reply_scope: str = ReplyScope.ALL
    reviews_per_item: int = 1
    rubric: Iterable[ScoreConfig] = ()
    reviewers: Iterable[Any] = ()
    reviewer_role: str = ""
    due_date: dt.date | None = None
    lease_minutes: int = 30
    adjudication_threshold: float = 1.0
    description: str = ""


def eligible_count(reviewers: list, role: str) -> int:
    """How many different people can review: the named ones plus the role's members."""
    people = {u.pk for u in reviewers}
    if role:
        group = Group.objects.filter(name=role).first()
        if group is not None:
            people |= set(group.user_set.filter(is_active=True).values_list("pk", flat=True))
    return len(people)


@transaction.atomic
def queue_create(*, actor, spec: QueueSpec) -> ReviewQueue:
    """Build a queue and fill it from its source. A queue needing k reviews per item needs k people who can
    review; a snapshot that matches no reply is refused (nothing would ever join it)."""
    perms.require_manage(actor)
    reviewers = list(spec.reviewers)
    if spec.reviewer_role and spec.reviewer_role not in roles.ALL_ROLES:
        raise ValidationError({"reviewer_role": f"Unknown role {spec.reviewer_role!r}."})
    if not 1 <= spec.reviews_per_item <= 3:
        raise ValidationError({"reviews_per_item": "Ask for 1, 2 or 3 reviews per reply."})
    if eligible_count(reviewers, spec.reviewer_role) < spec.reviews_per_item:
        raise ValidationError({"reviewers": f"{spec.reviews_per_item} reviews per reply need at least "
                                            f"{spec.reviews_per_item} reviewers."})
    if spec.source_kind == SourceKind.SAVED_VIEW and spec.saved_view is None:
        raise ValidationError({"saved_view": "Choose a saved view."})
    queue = ReviewQueue.objects.create(
        name=spec.name.strip() or "Review queue", description=spec.description, source_kind=spec.source_kind,
        query_string=spec.saved_view.query_string if spec.saved_view else spec.query_string,
        saved_view=spec.saved_view, source_value=spec.source_value, mode=spec.mode, reply_scope=spec.reply_scope,
        reviews_per_item=spec.reviews_per_item, reviewer_role=spec.reviewer_role, due_date=spec.due_date,
        lease_minutes=spec.lease_minutes, adjudication_threshold=spec.adjudication_threshold, created_by=actor,
    )
    queue.rubric.set(list(spec.rubric))
    queue.reviewers.set(reviewers)
    added = queue_fill(queue)
    if added == 0 and spec.mode == Mode.SNAPSHOT:
        raise ValidationError({"query_string": "No model reply matches this source: the queue would stay empty."})
    return queue


@transaction.atomic
def queue_set_archived(*, actor, queue: ReviewQueue, archived: bool) -> ReviewQueue:
    """Archive a queue (it leaves "My queues", hands out nothing, stops growing and stops blinding its reviewers) or
    bring it back. Its reviews, scores and agreement stay."""
    perms.require_manage(actor)
    queue.is_archived = archived
    queue.save(update_fields=["is_archived"])
    return queue


def live_queues_refresh() -> int:
    """Add new matches to every live queue; returns how many replies joined."""
    added = 0
    for queue in ReviewQueue.objects.filter(mode=Mode.LIVE, is_archived=False):
        with transaction.atomic():
            added += queue_fill(queue)
    return added


# --- working -------------------------------------------------------------------------------------------------------


@transaction.atomic
def next_review(*, queue: ReviewQueue, reviewer) -> Review | None:
    """The reviewer's next item, held for them for ``lease_minutes``: first the one they hold already, then the
    first item (in queue order) that they have not reviewed or skipped and that still needs a review nobody else
    holds. Rows are locked with SKIP LOCKED, so two reviewers asking at once get different items. ``None`` when
    the reviewer has nothing left."""
    perms.require_reviewer(queue, reviewer)
    sql.lock_reviewer(queue.pk, reviewer.pk)
    now = timezone.now()
    lease = now + dt.timedelta(minutes=queue.lease_minutes)
    held = (
        Review.objects.select_for_update(of=("self",)).select_related("item")
        .filter(queue=queue, reviewer=reviewer, state=ReviewState.IN_PROGRESS).order_by("started_at").first()
    )
    if held is not None:
        if held.item.done_count < queue.reviews_per_item:
            Review.objects.filter(pk=held.pk).update(leased_until=lease)
            held.leased_until = lease
            return held
        Review.objects.filter(pk=held.pk).update(state=ReviewState.RELEASED)
    row = sql.next_item(queue.pk, reviewer.pk, queue.reviews_per_item, now)
    if row is None:
        return None
    item_id, turn_id, conversation_id, position, done_count, ran_out = row
    candidate = QueueItem(id=item_id, queue=queue, turn_id=turn_id, conversation_id=conversation_id,
                          position=position, done_count=done_count)
    if ran_out:
        # A hold that ran out on this item goes back: its reviewer gets another item when they come back.
        Review.objects.filter(item_id=item_id, state=ReviewState.IN_PROGRESS, leased_until__lte=now).update(
            state=ReviewState.RELEASED
        )
    review_row = Review.objects.create(item=candidate, queue=queue, reviewer=reviewer, leased_until=lease)
    review_row.item = candidate
    return review_row


def _own_review(queue: ReviewQueue, item_id: int, reviewer) -> Review:
    row = (
        Review.objects.select_for_update(of=("self",)).select_related("item__turn")
        .filter(item_id=item_id, queue=queue, reviewer=reviewer).first()
    )
    if row is None:
        raise ValidationError({"item": "Open this item from the queue first."})
    if row.state == ReviewState.DONE:
        raise ValidationError({"item": "You completed this item already."})
    if row.state == ReviewState.RELEASED:
        item = QueueItem.objects.select_for_update().get(pk=row.item_id)
        if item.done_count >= queue.reviews_per_item:
            raise ValidationError({"item": "Your hold on this item ran out and others completed it meanwhile."})
    return row


@transaction.atomic
def review_complete(*, queue: ReviewQueue, item_id: int, reviewer, answers: Mapping[ScoreConfig, object]) -> Review:
    """Store the reviewer's rubric scores for the item's reply and mark their review done (once)."""
    perms.require_reviewer(queue, reviewer)
    row = _own_review(queue, item_id, reviewer)
    rubric = selectors.queue_rubric(queue)
    missing = {review.field_name(c): f"{c.name}: choose a value." for c in rubric if c not in answers}
    if missing:
        raise ValidationError(missing)
    review.scores_save(actor=reviewer, turn=row.item.turn, answers={c: answers[c] for c in rubric})
    row.state, row.completed_at = ReviewState.DONE, timezone.now()
    row.save(update_fields=["state", "completed_at"])
    QueueItem.objects.filter(pk=row.item_id).update(done_count=F("done_count") + 1)
    return row


@transaction.atomic
def review_skip(*, queue: ReviewQueue, item_id: int, reviewer) -> Review:
    """The reviewer passes on the item: it goes back to the others and never comes back to them."""
    perms.require_reviewer(queue, reviewer)
    row = _own_review(queue, item_id, reviewer)
    row.state, row.completed_at = ReviewState.SKIPPED, timezone.now()
    row.save(update_fields=["state", "completed_at"])
    return row


# --- adjudication --------------------------------------------------------------------------------------------------


@transaction.atomic
def adjudicate(
    *,
    actor,
    queue: ReviewQueue,
    item_id: int,
    annotation_ids: Iterable[int],
    answers: Mapping[ScoreConfig, object],
    note: str = "",
) -> QueueItem:
    """Make the gold annotation of a completed item from the reviewers' work: each chosen annotation (a comment,
    highlight or suggested edit of one of the item's reviewers) is copied as a gold annotation by ``actor``, a
    chosen suggestion is accepted (it becomes the corrected reply's draft), the chosen scores become gold scores,
    and the item is marked adjudicated. The choice is audited with every candidate."""
    perms.require_adjudicate(actor)
    item = QueueItem.objects.select_for_update().select_related("turn").get(pk=item_id, queue=queue)
    if item.done_count < queue.reviews_per_item:
        raise ValidationError({"item": "Adjudicate once every review of this item is complete."})
    reviewers = list(Review.objects.filter(item=item, state=ReviewState.DONE).values_list("reviewer_id", flat=True))
    candidates = {
        a.pk: a for a in Annotation.objects.filter(
            turn_id=item.turn_id, author_id__in=reviewers, deleted_at__isnull=True, is_gold=False
        ).prefetch_related("tags")
    }
    chosen = [candidates[i] for i in dict.fromkeys(annotation_ids) if i in candidates]
    unknown = set(annotation_ids) - set(candidates)
    if unknown:
        raise ValidationError({"annotations": f"Not a reviewer's annotation on this reply: {sorted(unknown)}."})
    gold_ids = []
    for source in chosen:
        gold = review.annotation_create(
            actor=actor, turn=item.turn, body=source.body, tag_ids=[t.pk for t in source.tags.all()],
            kind=source.kind, start=source.start, end=source.end, exact=source.exact, text_hash=source.text_hash,
            replacement=source.replacement, is_gold=True,
        )
        if gold.kind == AnnotationKind.SUGGESTION and gold.suggestion_state == SuggestionState.PENDING:
            review.suggestion_decide(actor=actor, annotation_id=gold.pk, version=gold.version, accept=True)
        gold_ids.append(gold.pk)
    rubric = selectors.queue_rubric(queue)
    given = {c: answers[c] for c in rubric if c in answers and str(answers[c]).strip() != ""}
    if given:
        review.scores_save(actor=actor, turn=item.turn, answers=given, gold=True)
    item.adjudicated_by, item.adjudicated_at = actor, timezone.now()
    item.save(update_fields=["adjudicated_by", "adjudicated_at"])
    review.audit_conversation(
        actor=actor, conversation_id=item.conversation_id, action="adjudicate", object_type="queueitem",
        object_id=item.pk,
        before={"queue": queue.pk, "reviewers": reviewers, "annotations": sorted(candidates)},
        after={"chosen": [a.pk for a in chosen], "gold": gold_ids,
               "scores": {c.key: str(v) for c, v in given.items()}, "note": note.strip()[:2000]},
    )
    return item

