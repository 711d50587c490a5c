"""Product-team analytics: session tags, saved views of the session list, and the daily rollup the dashboard reads.

Rows are written only by ``sessions.insights.services`` (tags, saved views) and ``sessions.insights.rollup``
(the rollup tables, rebuilt with set-based SQL). Session tags are the product team's labels for whole sessions;
they are distinct from the reviewers' span taxonomy (``annotations.Tag``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from sessions.models import Conversation


class SessionTag(models.Model):
    """A product-team label for sessions, e.g. "onboarding flow" or "Q3 pricing bug"."""

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


class SessionTagging(models.Model):
    """One session carrying one tag. Written in bulk with INSERT ... SELECT ... ON CONFLICT DO NOTHING."""

    # The (conversation, tag) unique index serves look-ups by conversation; "sessiontagging_tag_conv" by tag.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="session_taggings",
                                     db_index=False)
    tag = models.ForeignKey(SessionTag, on_delete=models.CASCADE, related_name="taggings", db_index=False)
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
    """A named filter of the session list; ``/insights/views/<slug>/`` redirects to the list with it."""

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

    def get_absolute_url(self) -> str:
        return reverse("insights:view_open", args=[self.slug])

    @property
    def list_url(self) -> str:
        base = reverse("conversations:list")
        return f"{base}?{self.query_string}" if self.query_string else base


class Grain(models.IntegerChoices):
    """Which dimensions besides the model version a rollup row keeps (bits: environment 4, user role 2, app
    version 1); the others are aggregated away and stored as ''."""

    MODEL = 0, "model version"
    APP = 1, "model, app version"
    ROLE = 2, "model, user role"
    ROLE_APP = 3, "model, user role, app version"
    ENV = 4, "model, environment"
    ENV_APP = 5, "model, environment, app version"
    ENV_ROLE = 6, "model, environment, user role"
    ALL = 7, "every dimension"


GRAIN_BITS = {"environment": 4, "user_role": 2, "app_version": 1}


class DailyRollup(models.Model):
    """Per start day (UTC) of a session and its dimensions: sessions, turns and feedback events by kind.

    Every figure belongs to the day its session started, so a chart point's sessions are exactly the session
    list filtered by that day range and those dimensions. Sessions without a start time are not counted.

    Each day is stored at every ``grain``: the full one (every dimension) and seven coarser ones derived from it, so
    the dashboard reads only as many rows as the dimensions it filters or splits by need (six a day for the
    unfiltered view instead of hundreds).
    """

    grain = models.PositiveSmallIntegerField(choices=Grain.choices, default=Grain.ALL)
    day = models.DateField()
    model_version = models.CharField(max_length=128)
    environment = models.CharField(max_length=16)
    user_role = models.CharField(max_length=64)
    app_version = models.CharField(max_length=128)
    sessions = models.IntegerField(default=0)
    turns = models.IntegerField(default=0)
    model_turns = models.IntegerField(default=0, help_text="Assistant turns (model replies).")
    feedback = models.IntegerField(default=0, help_text="Feedback events of every kind.")
    negative = models.IntegerField(default=0, help_text="Feedback events counted as negative.")
    negative_sessions = models.IntegerField(default=0)
    thumbs_up = models.IntegerField(default=0)
    thumbs_down = models.IntegerField(default=0)
    rating = models.IntegerField(default=0)
    category = models.IntegerField(default=0)
    comment = models.IntegerField(default=0)
    correction = models.IntegerField(default=0)
    copy = models.IntegerField(default=0)
    abandon = models.IntegerField(default=0)
    regenerate = models.IntegerField(default=0)
    rephrase = models.IntegerField(default=0)
    abandoned_sessions = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "day", "model_version", "environment", "user_role", "app_version"],
                name="dailyrollup_grain_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model_version}/{self.environment}/{self.user_role}/{self.app_version} ({self.grain})"


class DailyCategoryRollup(models.Model):
    """Feedback events per start day, dimensions and category (an event with two categories counts in both).

    Stored at the full grain (every dimension) and, like ``DailyRollup``, at coarser grains of the filter
    dimensions (environment 4, user role 2, app version 1; the model version is kept only at the full grain)."""

    grain = models.PositiveSmallIntegerField(choices=Grain.choices, default=Grain.ALL)
    day = models.DateField()
    model_version = models.CharField(max_length=128)
    environment = models.CharField(max_length=16)
    user_role = models.CharField(max_length=64)
    app_version = models.CharField(max_length=128)
    category = models.CharField(max_length=100)
    events = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "day", "model_version", "environment", "user_role", "app_version", "category"],
                name="dailycategoryrollup_grain_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.category}: {self.events}"


class RollupState(models.Model):
    """One row (pk 1): when the rollup was last refreshed, for the dashboard's freshness line."""

    refreshed_at = models.DateTimeField(null=True, blank=True)
    full_rebuild_at = models.DateTimeField(null=True, blank=True)
    #: The newest import batch whose sessions are in the rollup (imports after it are pending).
    last_batch_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"rollup refreshed {self.refreshed_at}"
