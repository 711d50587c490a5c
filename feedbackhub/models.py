"""Project-wide models: API tokens for machine clients (the LLM app calling the recall API), and the outbox.

Token rows are written only by ``feedbackhub.auth_tokens`` (the secret itself is never stored, only its sha256);
outbox rows only by ``feedbackhub.outbox``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class ApiScope(models.TextChoices):
    RECALL = "recall", "Recall API (POST /api/v1/recall)"
    INGEST = "ingest", "Ingest API (conversations, feedback, OTLP traces)"


class RecallGate(models.TextChoices):
    """What a token's recall answers may return as few-shot examples (docs/recall.md, "Gates")."""

    APPROVED = "approved", "Approved corrections"
    FOUR_EYES = "four_eyes", "Corrections approved by a second person"
    DATASET = "dataset", "Examples of a released dataset version"


class ApiToken(models.Model):
    """A bearer token for the JSON API. ``prefix`` (the token's first characters) identifies it in lists and
    logs; ``digest`` is the sha256 of the whole token, the only form in which the secret is kept.

    A token is bound to the sources (``Conversation.source``) of the app that uses it and sees only their data,
    unless an admin grants ``all_sources``. ``gate`` (with ``gate_dataset``/``gate_dataset_version`` for the
    dataset gate) chooses what the recall API may return as examples."""

    name = models.CharField(max_length=100, help_text="Who or what uses the token, e.g. 'support-bot prod'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = ArrayField(models.CharField(max_length=32, choices=ApiScope.choices), default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    sources = ArrayField(
        models.CharField(max_length=100), default=list, blank=True,
        help_text="Conversation sources (apps) whose data the token sees, comma-separated.",
    )
    all_sources = models.BooleanField(
        default=False, help_text="Grant: the token sees every source's data, whatever its sources list says."
    )
    gate = models.CharField(
        max_length=16, choices=RecallGate.choices, default=RecallGate.FOUR_EYES,
        help_text="What recall may return as examples.",
    )
    gate_dataset = models.CharField(
        max_length=120, blank=True, help_text="The dataset gate's dataset (its name)."
    )
    gate_dataset_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The dataset gate's pinned version number; empty: the newest cut version."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def gate_label(self) -> str:
        """The gate as the API and the admin name it: ``four_eyes``, or ``dataset:NAME@latest``/``@N``."""
        if self.gate != RecallGate.DATASET:
            return self.gate
        return f"dataset:{self.gate_dataset}@{self.gate_dataset_version or 'latest'}"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


def default_widget_categories() -> list[str]:
    return list(settings.WIDGET_DEFAULT_CATEGORIES)


class WidgetKey(models.Model):
    """A publishable key for the embeddable feedback widget (``/widget/v1.js``). It is not a secret: it sits in the
    host page. What keeps it harmless is what it may do: write end-user feedback for its one ``source``, only from
    its ``origins`` (CORS and the ``Origin`` header), at most ``rate_per_minute`` requests a minute. It reads
    nothing but its own chips (``categories``)."""

    name = models.CharField(max_length=100, help_text="Which app embeds it, e.g. 'support-bot web'.")
    key = models.CharField(max_length=64, unique=True, editable=False)
    source = models.CharField(max_length=100, help_text="The conversation source (app) it writes feedback for.")
    origins = ArrayField(
        models.CharField(max_length=200), default=list,
        help_text="Origins allowed to send feedback, e.g. https://app.example (scheme, host and port).",
    )
    categories = ArrayField(
        models.CharField(max_length=100), default=default_widget_categories, blank=True,
        help_text="The 'What was wrong?' choices shown after a thumbs down.",
    )
    rate_per_minute = models.PositiveIntegerField(default=120)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "widget key"

    def __str__(self) -> str:
        return f"{self.name} ({self.source})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class OutboxTask(models.Model):
    """A Celery task that could not be sent (broker unreachable); ``feedbackhub.outbox.drain`` sends it later."""

    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.task_name} (outbox #{self.pk})"
