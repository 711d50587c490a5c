"""Curated example datasets: approved corrections with their context, reviewed by domain experts, frozen into
immutable versions, and exported in standard formats.

Rows are written only by ``annotations.curation.services``.

An ``Example`` is a snapshot: it copies the system prompt, the conversation before the reply, the original and the
corrected reply when it is added, so later edits of turns or corrections do not change it. A ``DatasetVersion``
freezes the approved examples once more into ``VersionExample`` rows, with the sha256 of their canonical JSONL, so a
version's exports stay byte-identical whatever happens to the examples afterwards.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse

from annotations.models import Correction
from sessions.models import Conversation, Turn


class Dataset(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("curation:dataset", args=[self.slug])


class ExampleStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class ExampleFields(models.Model):
    """The exported content of an example, shared by live examples and the frozen rows of a version."""

    system_prompt = models.TextField(blank=True)
    # The conversation before the reply, in order: [{"role": "user"|"assistant"|"system"|"tool", "content": "..."}];
    # an assistant message may carry "tool_calls" [{id, name, arguments, result?}], a tool message "tool_call_id".
    messages = models.JSONField(default=list, blank=True)
    # The context the reply itself was given: documents [{id, score, title, text}] and the tool calls it made
    # [{id, name, arguments, result}]. Empty for examples snapshotted before these were kept.
    retrieved_documents = models.JSONField(default=list, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    original = models.TextField(help_text="The reply as the model gave it.")
    corrected = models.TextField(help_text="The approved corrected reply.")
    rationale = models.TextField(blank=True)
    tags = ArrayField(models.CharField(max_length=80), default=list, blank=True)
    # Where it came from: source, external_id, conversation and turn ids, model_version, environment.
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True


class Example(ExampleFields):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="examples")
    # The sources may be deleted later (a redaction, a re-import); the snapshot stays.
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    correction = models.ForeignKey(Correction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=ExampleStatus.choices, default=ExampleStatus.PROPOSED)
    reviewer_notes = models.TextField(blank=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset", "id"]
        constraints = [
            # One example per reply and dataset: adding the same correction twice is a no-op.
            models.UniqueConstraint(
                fields=["dataset", "turn"], condition=models.Q(turn__isnull=False), name="example_dataset_turn_uniq"
            ),
        ]
        indexes = [models.Index(fields=["dataset", "status", "id"], name="example_dataset_status_id")]

    def __str__(self) -> str:
        return f"example #{self.pk} in {self.dataset_id} ({self.status})"

    @property
    def question(self) -> str:
        """The last user message before the reply."""
        return next((m.get("content", "") for m in reversed(self.messages) if m.get("role") == "user"), "")


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    example_count = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, help_text="sha256 of the canonical JSONL (the hf export's rows).")

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number_uniq")]

    def __str__(self) -> str:
        return f"{self.dataset_id} v{self.number}"


class VersionExample(ExampleFields):
    """A frozen copy of one approved example at the time its version was cut; never updated."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="rows")
    position = models.PositiveIntegerField()
    example_id = models.BigIntegerField(help_text="The example it was copied from (which may be gone).")

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="version_example_position_uniq"),
        ]

    def __str__(self) -> str:
        return f"row {self.position} of version {self.version_id}"


class ExportFormat(models.TextChoices):
    OPENAI = "openai", "OpenAI chat fine-tuning (JSONL)"
    DPO = "dpo", "Preference pairs for DPO, prompt/chosen/rejected strings (JSONL)"
    DPO_CHAT = "dpo_chat", "Preference pairs for DPO, conversational messages (JSONL)"
    HF = "hf", "Hugging Face dataset folder (zip)"
    W3C = "w3c", "W3C Web Annotation (JSON-LD)"
    CSV = "csv", "CSV for spreadsheets"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    """A large export written by a worker to a file under ``CURATION_EXPORT_DIR``."""

    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.CASCADE, related_name="exports")
    version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="exports"
    )
    format = models.CharField(max_length=16, choices=ExportFormat.choices)
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True)
    path = models.CharField(max_length=1000, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    base_url = models.CharField(max_length=500, blank=True, help_text="The app's address, for links in the export.")
    scrub = models.BooleanField(default=True, help_text="Whether private data was replaced by placeholders.")
    # {"EMAIL": 8, "CARD": 4}: the placeholders the scrubber put in, once the export has finished.
    scrub_counts = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"export #{self.pk} {self.format} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("curation:export_job", args=[self.pk])

    @property
    def finished(self) -> bool:
        return self.status in (ExportStatus.DONE, ExportStatus.FAILED)

    @property
    def scrubbed_total(self) -> int:
        return sum(self.scrub_counts.values())

    @property
    def progress_percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        if not self.total:
            return 0
        return min(100, int(100 * self.done / self.total))
