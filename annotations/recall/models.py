"""Semantic recall: one searchable item per piece of feedback, and its embedding vectors.

A :class:`FeedbackItem` exists for every reviewer annotation and for every end-user feedback event that carries text
or a negative signal. It copies the filter columns of its conversation (environment, model version, user role, app
version) so a vector search filters on one row per candidate, and it holds the ``text`` that gets embedded with its
sha256 in ``text_hash``. Rows are written only by ``annotations.recall.services``.

An :class:`Embedding` is one vector of one item's text by one model: unique on (item, model, text_hash), so embedding
twice changes nothing. Search uses the vectors of the active model (:class:`EmbeddingModel`) whose text hash is the
item's current one.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Cast
from pgvector.django import HalfVectorField, HnswIndex, VectorField

from annotations.models import Annotation, Tag
from sessions.models import Conversation, FeedbackEvent, Turn

#: Width of the vectors the table stores (all-MiniLM-L6-v2). A model of another width needs a migration.
DIMENSIONS = 384


class SourceKind(models.TextChoices):
    ANNOTATION = "annotation", "Reviewer annotation"
    FEEDBACK_EVENT = "feedback", "End-user feedback"


class FeedbackItem(models.Model):
    """One piece of feedback as a searchable item: a reviewer annotation or an end-user feedback event."""

    source = models.CharField(max_length=16, choices=SourceKind.choices)
    # Exactly one of these is set (check constraint); each is unique, so a source has at most one item.
    annotation = models.OneToOneField(
        Annotation, null=True, blank=True, on_delete=models.CASCADE, related_name="feedback_item"
    )
    feedback_event = models.OneToOneField(
        FeedbackEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="feedback_item"
    )
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="feedback_items")
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="feedback_items")

    # Denormalised from the conversation (and the source) so that filtered vector searches read one row each.
    environment = models.CharField(max_length=16, blank=True)
    #: ``Conversation.source``: the app the conversation came from, which scopes API tokens.
    conversation_source = models.CharField(max_length=100, blank=True)
    model_version = models.CharField(max_length=128, blank=True)
    user_role = models.CharField(max_length=64, blank=True)
    app_version = models.CharField(max_length=128, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="When the feedback was given.")
    tag_ids = ArrayField(
        models.BigIntegerField(), default=list, blank=True,
        help_text="annotations.Tag ids: the annotation's tags, or the tags an end user's categories name.",
    )
    kind = models.CharField(max_length=16, blank=True, help_text="Annotation kind or feedback event kind.")
    is_negative = models.BooleanField(default=False)
    #: The annotation is resolved, or the turn has an approved correction.
    is_resolved = models.BooleanField(default=False)
    #: False while the source annotation is deleted (kept, with its vectors, so an undo costs nothing).
    is_active = models.BooleanField(default=True)

    text = models.TextField(help_text="What gets embedded.")
    text_hash = models.CharField(max_length=64, help_text="sha256 of text.")
    #: Set when the text is new or changed, cleared once the active model's vector of it is stored: the embed task
    #: finds its work through a small partial index instead of an anti-join over every item.
    embedding_pending = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(source=SourceKind.ANNOTATION, annotation__isnull=False, feedback_event__isnull=True)
                    | models.Q(source=SourceKind.FEEDBACK_EVENT, annotation__isnull=True, feedback_event__isnull=False)
                ),
                name="feedback_item_one_source",
            ),
        ]
        indexes = [
            GinIndex(fields=["tag_ids"], name="feedback_item_tag_ids"),
            models.Index(fields=["id"], condition=models.Q(embedding_pending=True), name="feedback_item_embed_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} item #{self.pk}"

    @property
    def tags(self) -> list[Tag]:
        """The item's tags. Selectors attach them in one query for a whole result list; otherwise one query."""
        cached = self.__dict__.get("_tags")
        if cached is None:
            cached = list(Tag.objects.filter(pk__in=self.tag_ids)) if self.tag_ids else []
            self.__dict__["_tags"] = cached
        return cached

    @tags.setter
    def tags(self, value: list[Tag]) -> None:
        self.__dict__["_tags"] = list(value)


class EmbeddingModel(models.Model):
    """A sentence-embedding model vectors were made with; exactly one is active (searched and kept up to date)."""

    name = models.CharField(max_length=300, unique=True)
    dimensions = models.PositiveSmallIntegerField(default=DIMENSIONS)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True),
                                    name="embedding_model_one_active"),
        ]

    def __str__(self) -> str:
        return self.name + (" (active)" if self.is_active else "")


class Embedding(models.Model):
    """The vector of one item's text (``text_hash``) by one model (``model``, its name)."""

    item = models.ForeignKey(FeedbackItem, on_delete=models.CASCADE, related_name="embeddings", db_index=False)
    model = models.CharField(max_length=300)
    text_hash = models.CharField(max_length=64)
    vector = VectorField(dimensions=DIMENSIONS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Also the index for "does this item have a vector for this model and text": the embed task's probe.
            models.UniqueConstraint(fields=["item", "model", "text_hash"], name="embedding_item_model_hash_uniq"),
        ]
        indexes = [
            # Cosine HNSW over half-precision copies of the vectors (half the size, same recall here; see
            # docs/recall.md). Queries must order by the same expression to use it.
            HnswIndex(
                OpClass(Cast("vector", HalfVectorField(dimensions=DIMENSIONS)), name="halfvec_cosine_ops"),
                name="embedding_vector_hnsw",
                m=24,
                ef_construction=128,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} vector of item {self.item_id}"
