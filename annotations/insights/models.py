"""Product-team analytics: the daily rollups the dashboard reads.

Rows are written only by ``annotations.insights.services`` (rebuilt with set-based SQL). The product team's
conversation tags and saved views of the conversation list belong to the conversations app (``sessions.models``).
"""

from __future__ import annotations

from django.db import models


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
