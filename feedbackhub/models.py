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


class ApiToken(models.Model):
    """A bearer token for the JSON API. ``prefix`` (the token's first characters) identifies it in lists and
    logs; ``digest`` is the sha256 of the whole token, the only form in which the secret is kept."""

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

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


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
