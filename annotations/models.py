"""Review workspace: tags, annotations on assistant replies (comments and suggested edits), replies, corrections,
and the audit trail of every change.

Rows are written only by ``annotations.services``; nothing here has behaviour beyond small derived properties.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models

from sessions.models import Conversation, Turn


class Severity(models.IntegerChoices):
    LOW = 1, "Low"
    MEDIUM = 2, "Medium"
    HIGH = 3, "High"
    CRITICAL = 4, "Critical"


class Tag(models.Model):
    """One entry of the feedback taxonomy; admins manage them in the Django admin."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    colour = models.CharField(
        max_length=7,
        default="#f5c542",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a hex colour such as #f5c542.")],
    )
    hotkey = models.CharField(
        max_length=1,
        blank=True,
        help_text="One digit or letter that applies the tag in the review workspace (not j, k, c, a, r, e, s, ?).",
        validators=[RegexValidator(r"^[0-9a-z]?$", "Use one digit or lower-case letter.")],
    )
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.MEDIUM)
    group = models.CharField(max_length=60, blank=True, help_text="Groups tags in pickers, e.g. Accuracy, Style.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["group", "name"]
        constraints = [
            models.UniqueConstraint(fields=["hotkey"], condition=~models.Q(hotkey=""), name="tag_hotkey_uniq"),
        ]

    def __str__(self) -> str:
        return self.name


class AnnotationKind(models.TextChoices):
    COMMENT = "comment", "Comment"
    SUGGESTION = "suggestion", "Suggested edit"


class AnnotationStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class AnchorState(models.TextChoices):
    ANCHORED = "anchored", "Anchored"
    ORPHANED = "orphaned", "Orphaned"


class SuggestionState(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class Annotation(models.Model):
    """A comment or suggested edit on an assistant turn, on a span of its text or (no span) on the whole reply.

    The span is a W3C TextQuoteSelector (exact/prefix/suffix) plus TextPositionSelector (start/end, Unicode code
    points) made on the turn text whose sha256 is ``text_hash``. ``version`` grows on every change; a save that
    names an older version is a conflict.
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="annotations")
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="annotations")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    kind = models.CharField(max_length=16, choices=AnnotationKind.choices, default=AnnotationKind.COMMENT)
    body = models.TextField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="annotations")
    status = models.CharField(max_length=16, choices=AnnotationStatus.choices, default=AnnotationStatus.OPEN)

    # Selector (all empty / null for whole-reply feedback).
    exact = models.TextField(blank=True)
    prefix = models.TextField(blank=True)
    suffix = models.TextField(blank=True)
    start = models.PositiveIntegerField(null=True, blank=True)
    end = models.PositiveIntegerField(null=True, blank=True)
    text_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the turn text the span refers to.")
    anchor_state = models.CharField(max_length=16, choices=AnchorState.choices, default=AnchorState.ANCHORED)

    # Suggested edit: the replacement for the span.
    replacement = models.TextField(blank=True)
    suggestion_state = models.CharField(max_length=16, choices=SuggestionState.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    #: The final (gold) annotation an adjudicator chose from several reviewers' work on this reply.
    is_gold = models.BooleanField(default=False)

    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["turn_id", "start", "created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "updated_at"], name="annotation_conv_updated"),
            models.Index(fields=["turn", "start"], name="annotation_turn_start"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(start__isnull=True, end__isnull=True)
                | models.Q(start__isnull=False, end__isnull=False, start__lt=models.F("end")),
                name="annotation_span_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} on turn {self.turn_id}"

    @property
    def has_span(self) -> bool:
        return self.start is not None

    @property
    def is_suggestion(self) -> bool:
        return self.kind == AnnotationKind.SUGGESTION


class AnnotationReply(models.Model):
    """One message in an annotation's thread."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="replies")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["annotation_id", "created_at", "id"]
        verbose_name_plural = "annotation replies"

    def __str__(self) -> str:
        return f"reply #{self.pk} on annotation {self.annotation_id}"


class CorrectionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"


class Correction(models.Model):
    """The corrected version of an assistant reply: accepted suggestions compose into it, experts may rewrite it
    whole with a rationale, and a domain expert approves it."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="corrections")
    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="correction")
    text = models.TextField()
    rationale = models.TextField(blank=True)
    base_hash = models.CharField(max_length=64, help_text="sha256 of the turn text the correction started from.")
    status = models.CharField(max_length=16, choices=CorrectionStatus.choices, default=CorrectionStatus.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["conversation", "updated_at"], name="correction_conv_updated")]

    def __str__(self) -> str:
        return f"correction of turn {self.turn_id} ({self.status})"


class AuditEvent(models.Model):
    """Who did what to which annotation, reply or correction, when, with the state before and after."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    correction = models.ForeignKey(
        Correction, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=32)
    object_type = models.CharField(max_length=32)
    object_id = models.BigIntegerField()
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["conversation", "at"], name="audit_conv_at")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}#{self.object_id}"


class ScoreKind(models.TextChoices):
    NUMERIC = "numeric", "Number in a range"
    CATEGORICAL = "categorical", "One of some options"
    BOOLEAN = "boolean", "Yes or no"


class ScoreConfig(models.Model):
    """One field of a rubric (e.g. "Helpfulness 1-5"), versioned: changing a field's range, options or kind makes a
    new version under the same ``key``, so scores given under the old one keep their meaning."""

    key = models.SlugField(max_length=60, help_text="Names the field across its versions, e.g. helpfulness.")
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True, help_text="What the reviewer judges; shown beside the field.")
    kind = models.CharField(max_length=16, choices=ScoreKind.choices)
    minimum = models.FloatField(null=True, blank=True)
    maximum = models.FloatField(null=True, blank=True)
    step = models.FloatField(null=True, blank=True, help_text="Numeric fields: allowed step (1 for whole numbers).")
    options = ArrayField(models.CharField(max_length=60), default=list, blank=True,
                         help_text="Categorical fields: the options, in order.")
    is_current = models.BooleanField(default=True, help_text="The newest version of its key.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="scoreconfig_key_version_uniq"),
            models.UniqueConstraint(fields=["key"], condition=models.Q(is_current=True),
                                    name="scoreconfig_one_current"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_nominal(self) -> bool:
        """Categorical and yes/no fields are compared as labels; numeric ones as distances."""
        return self.kind != ScoreKind.NUMERIC


class Score(models.Model):
    """One reviewer's value of one rubric field for one assistant reply. Numeric and yes/no values are in
    ``value`` (yes = 1, no = 0); a categorical one is the chosen option in ``option``. A gold score is the
    adjudicator's final value (one per reply and field)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="scores")
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="scores", db_index=False)
    config = models.ForeignKey(ScoreConfig, on_delete=models.PROTECT, related_name="scores")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="scores")
    value = models.FloatField(null=True, blank=True)
    option = models.CharField(max_length=60, blank=True)
    is_gold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["turn_id", "config_id", "is_gold", "author_id"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "config", "author"], condition=models.Q(is_gold=False),
                                    name="score_turn_config_author_uniq"),
            models.UniqueConstraint(fields=["turn", "config"], condition=models.Q(is_gold=True),
                                    name="score_turn_config_gold_uniq"),
        ]
        indexes = [models.Index(fields=["config", "value"], name="score_config_value")]

    def __str__(self) -> str:
        return f"{self.config_id}={self.display} on turn {self.turn_id}"

    @property
    def display(self) -> str:
        """The value as the reviewer chose it: "4", "yes", "partly"."""
        if self.option:
            return self.option
        if self.value is None:
            return ""
        if self.config.kind == ScoreKind.BOOLEAN:
            return "yes" if self.value else "no"
        return f"{self.value:g}"
