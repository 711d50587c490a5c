"""Review queues: a set of assistant replies (items) that reviewers work through one after another, each reviewed
by ``reviews_per_item`` people independently, scored with the queue's rubric, and adjudicated where they disagree.

Rows are written only by ``annotations.queues.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from annotations.models import ScoreConfig
from sessions.models import Conversation, SavedView, Turn


class SourceKind(models.TextChoices):
    FILTER = "filter", "A conversation-list filter"
    SAVED_VIEW = "saved_view", "A saved view"
    CLUSTER = "cluster", "A triage cluster"


class Mode(models.TextChoices):
    SNAPSHOT = "snapshot", "Snapshot: the replies that match now"
    LIVE = "live", "Live: new matches join the queue"


class ReplyScope(models.TextChoices):
    ALL = "all", "Every model reply"
    LAST = "last", "The last model reply of each conversation"


class ReviewQueue(models.Model):
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, help_text="What reviewers should look for.")
    source_kind = models.CharField(max_length=16, choices=SourceKind.choices, default=SourceKind.FILTER)
    #: The list filter's query string (a filter source, or the saved view's at creation).
    query_string = models.TextField(blank=True)
    saved_view = models.ForeignKey(SavedView, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    #: A registered reply source's value (``annotations.reply_sources``), e.g. a triage cluster id.
    source_value = models.CharField(max_length=60, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.SNAPSHOT)
    reply_scope = models.CharField(max_length=8, choices=ReplyScope.choices, default=ReplyScope.ALL)
    reviews_per_item = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(3)],
        help_text="Independent reviews each reply needs (2 or 3: reviewers do not see each other's work).",
    )
    rubric = models.ManyToManyField(ScoreConfig, blank=True, related_name="queues")
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="review_queues")
    reviewer_role = models.CharField(max_length=32, blank=True, help_text="Everyone with this role reviews too.")
    due_date = models.DateField(null=True, blank=True)
    lease_minutes = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="An item opened by a reviewer is held for them this long, then offered to others.",
    )
    adjudication_threshold = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Items whose reviewers agree on less than this share of the rubric, tags and spans go to "
                  "adjudication (1.0: any disagreement).",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    refreshed_at = models.DateTimeField(null=True, blank=True, help_text="Live queues: last look for new matches.")
    is_archived = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("queues:detail", args=[self.pk])

    @property
    def is_blind(self) -> bool:
        return self.reviews_per_item > 1


class QueueItem(models.Model):
    """One assistant reply in a queue."""

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="items", db_index=False)
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    #: Completed reviews: the item is complete when this reaches the queue's ``reviews_per_item``.
    done_count = models.PositiveSmallIntegerField(default=0)
    added_at = models.DateTimeField(auto_now_add=True)
    adjudicated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    adjudicated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["queue_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["queue", "turn"], name="queueitem_queue_turn_uniq")]
        indexes = [
            models.Index(fields=["queue", "position", "id"], name="queueitem_queue_position"),
            # "What is left" counts: the items of a queue still needing reviews.
            models.Index(fields=["queue", "done_count"], name="queueitem_queue_done"),
            models.Index(fields=["conversation"], name="queueitem_conversation"),
        ]

    def __str__(self) -> str:
        return f"item {self.position} of queue {self.queue_id}"


class ReviewState(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"
    RELEASED = "released", "Released"


class Review(models.Model):
    """One reviewer's turn at one item: opened (held for them until ``leased_until``), then done or skipped; a hold
    that ran out and was given to someone else is released."""

    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="reviews", db_index=False)
    #: The item's queue, copied so progress per reviewer is counted without joining the items.
    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="reviews", db_index=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=ReviewState.choices, default=ReviewState.IN_PROGRESS)
    started_at = models.DateTimeField(auto_now_add=True)
    leased_until = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "reviewer"], name="review_item_reviewer_uniq")]
        indexes = [
            models.Index(fields=["reviewer", "state"], name="review_reviewer_state"),
            models.Index(fields=["queue", "reviewer", "state"], name="review_queue_reviewer_state"),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_id} on item {self.item_id}: {self.state}"
