"""Conversation logs: a conversation, its ordered turns (with system context) and end-user feedback events.

Rows are written in bulk by the import pipeline (``sessions.imports.pipeline``), which relies on the unique
constraints below for idempotency: (source, external_id) for conversations, (conversation, position) for turns
and (turn, event_key) for feedback events.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Environment(models.TextChoices):
    DEV = "dev", "Development"
    TEST = "test", "Test"
    PROD = "prod", "Production"


class TurnRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    SYSTEM = "system", "System"
    TOOL = "tool", "Tool"


class FeedbackKind(models.TextChoices):
    THUMBS_UP = "thumbs_up", "Thumbs up"
    THUMBS_DOWN = "thumbs_down", "Thumbs down"
    RATING = "rating", "Rating"
    CATEGORY = "category", "Category"
    COMMENT = "comment", "Free text"
    CORRECTION = "correction", "User correction"
    COPY = "copy", "Copied"
    ABANDON = "abandon", "Abandoned"
    REGENERATE = "regenerate", "Regenerated"
    REPHRASE = "rephrase", "Rephrased / follow-up"


#: Kinds that count as negative on their own; a rating counts as negative at or below RATING_NEGATIVE_MAX.
NEGATIVE_KINDS = frozenset(
    {FeedbackKind.THUMBS_DOWN, FeedbackKind.CORRECTION, FeedbackKind.ABANDON, FeedbackKind.REGENERATE,
     FeedbackKind.REPHRASE}
)
IMPLICIT_KINDS = frozenset({FeedbackKind.COPY, FeedbackKind.ABANDON, FeedbackKind.REGENERATE, FeedbackKind.REPHRASE})
RATING_NEGATIVE_MAX = 2
#: PostgreSQL text-search configuration used to build and to query ``Conversation.search_vector``.
SEARCH_CONFIG = "english"


class FeedbackOrigin(models.TextChoices):
    """How a feedback event arrived. Only ``import`` events belong to their conversation's record: a re-import of an
    edited record replaces those, and leaves the ones sent live (API, widget, traces) alone."""

    IMPORT = "import", "Imported with its conversation"
    API = "api", "Feedback API"
    WIDGET = "widget", "Feedback widget"


class Conversation(models.Model):
    """One logged session between an end user and the LLM app."""

    source = models.CharField(max_length=100, help_text="Which app or log stream the conversation came from.")
    external_id = models.CharField(max_length=255, help_text="Id in the source; a content hash when it has none.")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the normalised record; detects edits.")
    title = models.CharField(max_length=200, blank=True, help_text="First user query, shortened.")
    end_user_id = models.CharField(max_length=255, blank=True, help_text="Pseudonymous end-user id.")
    user_role = models.CharField(max_length=64, blank=True)
    environment = models.CharField(max_length=16, choices=Environment.choices, blank=True)
    model_version = models.CharField(max_length=128, blank=True)
    app_version = models.CharField(max_length=128, blank=True, help_text="App or prompt version.")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Denormalised by the import pipeline so the list filters stay index-only at a million rows.
    turn_count = models.PositiveIntegerField(default=0)
    feedback_kinds = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    has_negative_feedback = models.BooleanField(default=False)
    search_vector = SearchVectorField(null=True, editable=False)
    imported_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_import = models.ForeignKey("ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Set by the review app when a reviewer first comments on, tags or corrects a reply of the conversation.
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="conversation_source_external_id_uniq"),
        ]
        indexes = [
            # Keyset pagination: newest first, id as tie-breaker.
            models.Index(fields=["-started_at", "-id"], name="conversation_started_id"),
            models.Index(fields=["environment", "-started_at", "-id"], name="conversation_env_started"),
            models.Index(fields=["model_version", "-started_at", "-id"], name="conversation_model_started"),
            models.Index(fields=["user_role", "-started_at", "-id"], name="conversation_role_started"),
            models.Index(fields=["source", "-started_at", "-id"], name="conversation_source_started"),
            models.Index(fields=["app_version", "-started_at", "-id"], name="conversation_app_started"),
            models.Index(
                fields=["-started_at", "-id"],
                name="conversation_negative_started",
                condition=models.Q(has_negative_feedback=True),
            ),
            models.Index(
                fields=["-started_at", "-id"],
                name="conversation_reviewed_started",
                condition=models.Q(reviewed_at__isnull=False),
            ),
            # "Live" (changed in the last minutes) in the list.
            models.Index(fields=["-updated_at", "-id"], name="conversation_updated"),
            GinIndex(fields=["feedback_kinds"], name="conversation_feedback_kinds"),
            GinIndex(fields=["search_vector"], name="conversation_search"),
        ]

    def __str__(self) -> str:
        return self.title or f"{self.source}:{self.external_id}"

    def get_absolute_url(self) -> str:
        return reverse("conversations:detail", args=[self.pk])


class Turn(models.Model):
    """One message in a conversation; model turns carry the system context they were generated with."""

    # No index of its own: the (conversation, position) unique index serves look-ups by conversation.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns", db_index=False)
    position = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=TurnRole.choices)
    content = models.TextField(blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    model_version = models.CharField(max_length=128, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    # System context of a model turn: the prompt, retrieved documents [{id, score, title, text}], tool calls.
    system_prompt = models.TextField(blank=True)
    retrieved_documents = models.JSONField(default=list, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["conversation", "position"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "position"], name="turn_conversation_position_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.position} {self.role}"

    @property
    def has_context(self) -> bool:
        return bool(self.system_prompt or self.retrieved_documents or self.tool_calls)


class FeedbackEvent(models.Model):
    """End-user feedback on a turn: explicit (thumbs, rating, categories, text, correction) or implicit."""

    # Indexed by the "feedback_conversation" index below and the (turn, event_key) unique index: no extra indexes
    # to maintain on every imported event.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="feedback_events", db_index=False
    )
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="feedback_events", db_index=False)
    event_key = models.CharField(max_length=64, help_text="Id in the source, or a hash of the event's content.")
    kind = models.CharField(max_length=16, choices=FeedbackKind.choices)
    rating = models.SmallIntegerField(null=True, blank=True)
    categories = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    text = models.TextField(blank=True)
    correction = models.TextField(blank=True)
    is_negative = models.BooleanField(default=False)
    created_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # A database default: the import pipeline's set-based SQL inserts events without naming the column.
    origin = models.CharField(max_length=16, choices=FeedbackOrigin.choices, default=FeedbackOrigin.IMPORT,
                              db_default=FeedbackOrigin.IMPORT)
    received_at = models.DateTimeField(null=True, blank=True, help_text="When a live event reached FeedbackHub.")

    class Meta:
        ordering = ["turn_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "event_key"], name="feedback_turn_event_key_uniq"),
        ]
        indexes = [models.Index(fields=["conversation"], name="feedback_conversation")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.turn_id}"


class ImportFormat(models.TextChoices):
    NATIVE = "native", "FeedbackHub JSONL"
    OPENAI = "openai", "OpenAI chat JSONL"
    SHAREGPT = "sharegpt", "ShareGPT JSON/JSONL"
    CSV = "csv", "CSV (one row per turn)"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    DONE_WITH_REJECTIONS = "partial", "Done with rejected records"
    FAILED = "failed", "Failed"


class ImportBatch(models.Model):
    """One import of one file: what came in, what was rejected and why, who ran it and how long it took."""

    file_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64, blank=True)
    format = models.CharField(max_length=16, choices=ImportFormat.choices, blank=True)
    source = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    error = models.TextField(blank=True, help_text="Why the whole file failed, if it did.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total_bytes = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    records_read = models.PositiveIntegerField(default=0)
    conversations_created = models.PositiveIntegerField(default=0)
    conversations_updated = models.PositiveIntegerField(default=0)
    conversations_unchanged = models.PositiveIntegerField(default=0)
    records_rejected = models.PositiveIntegerField(default=0)
    turns_written = models.PositiveIntegerField(default=0)
    feedback_written = models.PositiveIntegerField(default=0)
    stored_path = models.CharField(max_length=1000, blank=True, help_text="Uploaded file awaiting the worker.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it (bumped per chunk)."
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Runs started (a resumed run counts again).")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "import batches"
        indexes = [
            models.Index(fields=["heartbeat_at"], name="import_running_heartbeat",
                         condition=models.Q(status="running")),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("conversations:import_detail", args=[self.pk])

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def progress_percent(self) -> int:
        if not self.total_bytes:
            return 100 if self.status in {ImportStatus.DONE, ImportStatus.DONE_WITH_REJECTIONS} else 0
        return min(100, int(100 * self.bytes_read / self.total_bytes))


class ImportRejection(models.Model):
    """A record an import could not take, with where it was and why."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="rejections")
    line = models.PositiveIntegerField(help_text="1-based line (JSONL, CSV) or record number (JSON array).")
    field = models.CharField(max_length=200, blank=True)
    reason = models.TextField()
    excerpt = models.TextField(blank=True, help_text="The start of the rejected record.")

    class Meta:
        ordering = ["batch", "line", "id"]

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class ConversationTag(models.Model):
    """A product-team label for conversations, e.g. "onboarding flow" or "Q3 pricing bug"."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    colour = models.CharField(
        max_length=7,
        default="#4f6bed",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a hex colour such as #4f6bed.")],
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def colour_class(self) -> str:
        """A CSS class for the chip colour (the CSP forbids style attributes); see static/css/insights.css."""
        return f"stag-{self.colour.lstrip('#').lower()}"


class ConversationTagging(models.Model):
    """One conversation carrying one tag. Written in bulk with INSERT ... SELECT ... ON CONFLICT DO NOTHING."""

    # The (conversation, tag) unique index serves look-ups by conversation; "sessiontagging_tag_conv" by tag.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="taggings",
                                     db_index=False)
    tag = models.ForeignKey(ConversationTag, on_delete=models.CASCADE, related_name="taggings", db_index=False)
    tagged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    tagged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "tag"], name="sessiontagging_conv_tag_uniq"),
        ]
        indexes = [models.Index(fields=["tag", "conversation"], name="sessiontagging_tag_conv")]

    def __str__(self) -> str:
        return f"{self.tag_id} on {self.conversation_id}"


class SavedView(models.Model):
    """A named filter of the conversation list (its query string); opening it shows the list so filtered."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    query_string = models.TextField(blank=True, help_text="The list's query string, without cursors or '?'.")
    shared = models.BooleanField(default=False, help_text="Listed for everyone, not only the owner.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="savedview_owner_name_uniq")]

    def __str__(self) -> str:
        return self.name

    @property
    def list_url(self) -> str:
        base = reverse("conversations:list")
        return f"{base}?{self.query_string}" if self.query_string else base
