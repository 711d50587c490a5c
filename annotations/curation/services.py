"""Writes of the curation app: datasets, examples (snapshots of approved corrections), their review, versions and
export jobs. Every function checks permissions (``annotations.curation.permissions``) and validates its input;
bad input raises ``ValidationError`` naming the record and field."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from annotations import permissions as review_perms
from annotations.curation import exporters, selectors
from annotations.curation import permissions as perms
from annotations.curation.exporters import hf
from annotations.curation.models import (
    Dataset,
    DatasetVersion,
    Example,
    ExampleStatus,
    ExportFormat,
    ExportJob,
    ExportStatus,
    VersionExample,
)
from annotations.inbox import services as inbox
from annotations.models import Annotation, Correction, CorrectionStatus
from sessions.models import Turn

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 120
MAX_NOTES_CHARS = 10_000
#: Corrections snapshotted per round trip when adding in bulk.
ADD_BATCH = 500


def stream_max() -> int:
    """Most approved examples an export streams straight to the browser; a larger one runs as a background job."""
    return int(getattr(settings, "CURATION_STREAM_MAX_EXAMPLES", 5000))


def export_dir() -> Path:
    return Path(getattr(settings, "CURATION_EXPORT_DIR", Path(settings.BASE_DIR) / ".data" / "exports"))


# --- datasets -------------------------------------------------------------------------------------------------------


@transaction.atomic
def dataset_create(*, actor, name: str, description: str = "") -> Dataset:
    perms.require_curate(actor)
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": "Give the dataset a name."})
    if len(name) > MAX_NAME_CHARS:
        raise ValidationError({"name": f"At most {MAX_NAME_CHARS} characters ({len(name)} given)."})
    slug = slugify(name)[:MAX_NAME_CHARS] or "dataset"
    if Dataset.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"A dataset named {name!r} already exists."})
    base, n = slug, 2
    while Dataset.objects.filter(slug=slug).exists():
        slug = f"{base[: MAX_NAME_CHARS - 6]}-{n}"
        n += 1
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                name=name, slug=slug, description=(description or "").strip()[:MAX_NOTES_CHARS], created_by=actor
            )
    except IntegrityError:
        raise ValidationError({"name": f"A dataset named {name!r} already exists."}) from None


# --- examples -------------------------------------------------------------------------------------------------------


@dataclass
class AddResult:
    added: list[int] = field(default_factory=list)  # correction ids that became examples
    already_in: list[int] = field(default_factory=list)  # correction ids whose reply the dataset already holds
    not_approved: list[int] = field(default_factory=list)  # ids that are not approved corrections (or are gone)

    @property
    def message(self) -> str:
        parts = [f"{len(self.added)} added"]
        if self.already_in:
            parts.append(f"{len(self.already_in)} already in the dataset")
        if self.not_approved:
            ids = ", ".join(map(str, self.not_approved[:10])) + ("…" if len(self.not_approved) > 10 else "")
            parts.append(f"{len(self.not_approved)} skipped: not approved corrections (id {ids})")
        return "; ".join(parts) + "."


def _snapshots(corrections: list[Correction]) -> dict[int, dict[str, Any]]:
    """{correction id: Example fields} for approved corrections with turn and conversation loaded: 2 queries for the
    conversations' earlier turns and the replies' tags, whatever the number of corrections."""
    conversation_ids = {c.conversation_id for c in corrections}
    history: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    earlier = (
        Turn.objects.filter(conversation_id__in=conversation_ids)
        .order_by("conversation_id", "position")
        .values_list("conversation_id", "position", "role", "content", "tool_calls", "metadata")
    )
    for conversation_id, position, role, content, tool_calls, metadata in earlier:
        message: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and tool_calls:
            message["tool_calls"] = tool_calls
        if role == "tool" and (metadata or {}).get("tool_call_id") is not None:
            message["tool_call_id"] = str(metadata["tool_call_id"])
        history.setdefault(conversation_id, []).append((position, message))
    tags: dict[int, set[str]] = {}
    tag_rows = Annotation.tags.through.objects.filter(
        annotation__turn_id__in=[c.turn_id for c in corrections], annotation__deleted_at__isnull=True
    ).values_list("annotation__turn_id", "tag__name")
    for turn_id, name in tag_rows:
        tags.setdefault(turn_id, set()).add(name)
    out = {}
    for correction in corrections:
        turn, conversation = correction.turn, correction.conversation
        messages = [message for position, message in history.get(conversation.pk, []) if position < turn.position]
        out[correction.pk] = {
            "conversation_id": conversation.pk,
            "turn_id": turn.pk,
            "correction_id": correction.pk,
            "system_prompt": turn.system_prompt,
            "messages": messages,
            "retrieved_documents": turn.retrieved_documents or [],
            "tool_calls": turn.tool_calls or [],
            "original": turn.content,
            "corrected": correction.text,
            "rationale": correction.rationale,
            "tags": sorted(tags.get(turn.pk, ())),
            "metadata": {
                "source": conversation.source,
                "external_id": conversation.external_id,
                "conversation_id": conversation.pk,
                "turn_id": turn.pk,
                "model_version": turn.model_version or conversation.model_version,
                "environment": conversation.environment,
            },
        }
    return out


def _add_batch(*, actor, dataset: Dataset, ids: list[int], result: AddResult) -> None:
    corrections = list(
        Correction.objects.filter(pk__in=ids, status=CorrectionStatus.APPROVED)
        .select_related("turn", "conversation")
        .defer("conversation__search_vector")
    )
    found = {c.pk for c in corrections}
    result.not_approved.extend(i for i in ids if i not in found)
    held = set(Example.objects.filter(dataset=dataset, turn_id__in=[c.turn_id for c in corrections])
               .values_list("turn_id", flat=True))
    fresh = [c for c in corrections if c.turn_id not in held]
    result.already_in.extend(c.pk for c in corrections if c.turn_id in held)
    snapshots = _snapshots(fresh)
    Example.objects.bulk_create(
        [Example(dataset=dataset, proposed_by=actor, **snapshots[c.pk]) for c in fresh], batch_size=ADD_BATCH
    )
    result.added.extend(c.pk for c in fresh)


@transaction.atomic
def examples_add(*, actor, dataset: Dataset, correction_ids: Iterable[int | str]) -> AddResult:
    """Propose approved corrections as examples of ``dataset`` (status proposed). A reply the dataset already holds
    is skipped, so adding twice never duplicates; ids that are not approved corrections are reported, not added."""
    perms.require_propose(actor)
    try:
        ids = list(dict.fromkeys(int(i) for i in correction_ids))
    except (TypeError, ValueError):
        raise ValidationError({"corrections": "Correction ids must be whole numbers."}) from None
    if not ids:
        raise ValidationError({"corrections": "Choose at least one approved correction."})
    # One writer per dataset at a time: the "already in" check and the insert must not interleave.
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    result = AddResult()
    for start in range(0, len(ids), ADD_BATCH):
        _add_batch(actor=actor, dataset=dataset, ids=ids[start : start + ADD_BATCH], result=result)
    proposed = Example.objects.filter(dataset=dataset, correction_id__in=result.added)
    inbox.notify_examples_proposed(actor=actor, dataset=dataset.name, url=dataset.get_absolute_url(),
                                   examples=proposed.values_list("pk", "correction_id"))
    return result


def examples_add_matching(*, actor, dataset: Dataset, filters: selectors.CorrectionFilters) -> AddResult:
    """Propose every approved correction matching ``filters`` (all of them, not one page)."""
    perms.require_propose(actor)
    ids = list(selectors.approved_corrections(filters).values_list("pk", flat=True))
    if not ids:
        raise ValidationError({"corrections": "No approved correction matches these filters."})
    return examples_add(actor=actor, dataset=dataset, correction_ids=ids)


REVIEW_DECISIONS = {"approve": ExampleStatus.APPROVED, "reject": ExampleStatus.REJECTED, "": None}


@transaction.atomic
def example_review(*, actor, example_id: int, decision: str = "", notes: str | None = None) -> Example:
    """Approve or reject an example (``decision`` "approve"/"reject"), and/or set the reviewer notes (None keeps
    them). Domain experts only; under four-eyes the author of the example's correction cannot approve it."""
    perms.require_curate(actor)
    if decision not in REVIEW_DECISIONS:
        raise ValidationError({"decision": f"Unknown decision {decision!r}; use approve or reject."})
    example = Example.objects.select_for_update(of=("self",)).select_related("correction").filter(pk=example_id).first()
    if example is None:
        raise ValidationError({"example": f"Example {example_id} does not exist."})
    if decision == "approve":
        review_perms.require_second_approver(actor, example.correction)
    if notes is not None:
        notes = notes.strip()
        if len(notes) > MAX_NOTES_CHARS:
            raise ValidationError({"notes": f"At most {MAX_NOTES_CHARS} characters ({len(notes)} given)."})
        example.reviewer_notes = notes
    status = REVIEW_DECISIONS[decision]
    if status is not None:
        example.status = status
        example.reviewed_by = actor
        example.reviewed_at = timezone.now()
    example.save(update_fields=["status", "reviewer_notes", "reviewed_by", "reviewed_at", "updated_at"])
    return example


class BulkRefused(Exception):
    """A bulk review changed nothing: ``refused`` names each example that could not be decided and why."""

    def __init__(self, refused: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(refused)} example(s) refused; nothing was changed.")
        self.refused = refused


@transaction.atomic
def examples_review_bulk(*, actor, dataset: Dataset, status: str, decision: str, fingerprint: str) -> int:
    """Approve or reject every example of ``dataset`` with ``status`` ("" for all), all or nothing. ``fingerprint``
    is the one the confirmation showed (``selectors.fingerprint``): when the filtered set has changed since, nothing
    is done. An example that may not take the decision (four-eyes) makes the whole action refused, with the reason
    per example (``BulkRefused``). Returns how many examples changed status."""
    perms.require_curate(actor)
    if decision not in ("approve", "reject"):
        raise ValidationError({"decision": f"Unknown decision {decision!r}; use approve or reject."})
    if status and status not in ExampleStatus.values:
        raise ValidationError({"status": f"Unknown status {status!r}."})
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    examples = list(
        selectors.filtered_examples(dataset, status).select_for_update(of=("self",)).select_related("correction")
        .order_by("id")
    )
    if selectors.fingerprint(e.pk for e in examples) != fingerprint:
        raise ValidationError({"fingerprint": (
            f"The {status or 'filtered'} examples changed since you confirmed (now {len(examples)}); "
            "nothing was changed. Look at them again and confirm."
        )})
    if not examples:
        raise ValidationError({"status": "No example matches this filter."})
    if decision == "approve":
        refused = [(e.pk, reason) for e in examples if (reason := review_perms.four_eyes_refusal(actor, e.correction))]
        if refused:
            raise BulkRefused(refused)
    target = REVIEW_DECISIONS[decision]
    changing = [e.pk for e in examples if e.status != target]
    Example.objects.filter(pk__in=changing).update(
        status=target, reviewed_by=actor, reviewed_at=timezone.now(), updated_at=timezone.now()
    )
    return len(changing)


# --- versions -------------------------------------------------------------------------------------------------------


def version_sha256(version: DatasetVersion) -> str:
    """sha256 of the version's canonical JSONL (the hf export's ``data/train.jsonl``, scrubbed as the export is),
    streamed from its rows."""
    digest = hashlib.sha256()
    for record in exporters.ExportSource(version=version).examples():
        digest.update(hf.render(record))
    return digest.hexdigest()


@transaction.atomic
def version_cut(*, actor, dataset: Dataset, note: str = "", fingerprint: str | None = None) -> DatasetVersion:
    """Freeze the approved examples of ``dataset`` into a new numbered version (copied in one INSERT … SELECT) and
    store the sha256 of their canonical JSONL. Domain experts only. With ``fingerprint`` (the preview's,
    ``selectors.fingerprint``) it refuses when the approved examples are no longer the ones previewed."""
    perms.require_curate(actor)
    note = (note or "").strip()
    if len(note) > MAX_NOTES_CHARS:
        raise ValidationError({"note": f"At most {MAX_NOTES_CHARS} characters ({len(note)} given)."})
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    approved = Example.objects.filter(dataset=dataset, status=ExampleStatus.APPROVED)
    if fingerprint is not None:
        ids = list(approved.values_list("id", flat=True))
        if selectors.fingerprint(ids) != fingerprint:
            raise ValidationError({"fingerprint": (
                f"The approved examples changed since the preview (now {len(ids)}); no version was cut. "
                "Preview again."
            )})
    if not approved.exists():
        raise ValidationError({"dataset": f"Dataset {dataset.name!r} has no approved examples to freeze."})
    number = (DatasetVersion.objects.filter(dataset=dataset).aggregate(n=Max("number"))["n"] or 0) + 1
    version = DatasetVersion.objects.create(dataset=dataset, number=number, note=note, created_by=actor, sha256="")
    columns = "system_prompt, messages, original, corrected, rationale, tags, metadata, retrieved_documents, tool_calls"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {VersionExample._meta.db_table} (version_id, position, example_id, {columns}) "  # noqa: S608
            f"SELECT %s, row_number() OVER (ORDER BY id) - 1, id, {columns} FROM {Example._meta.db_table} "
            "WHERE dataset_id = %s AND status = %s",
            [version.pk, dataset.pk, ExampleStatus.APPROVED],
        )
        version.example_count = cursor.rowcount
    version.sha256 = version_sha256(version)
    version.save(update_fields=["example_count", "sha256"])
    return version


# --- export jobs ----------------------------------------------------------------------------------------------------


def export_is_large(*, count: int) -> bool:
    return count > stream_max()


@transaction.atomic
def export_job_create(
    *, actor, format: str, dataset: Dataset | None, version: DatasetVersion | None = None,  # noqa: A002
    base_url: str = "", scrub: bool = True,
) -> ExportJob:
    """Record an export to a file, queued; the caller has a worker run it (``tasks.export_job_run``) on commit.
    Only an admin may turn scrubbing off, and the job records it."""
    perms.require_read(actor)
    if format not in ExportFormat.values:
        raise ValidationError({"format": f"Unknown export format {format!r}."})
    if not scrub:
        perms.require_unscrubbed(actor)
    job = ExportJob.objects.create(
        dataset=dataset, version=version, format=format, created_by=actor, base_url=base_url[:500], scrub=scrub
    )
    return job


def export_job_run(*, job_id: int) -> ExportJob:
    """Write job ``job_id``'s export to ``CURATION_EXPORT_DIR`` (via a temporary file renamed at the end), keeping
    ``done``/``total`` current. A job already done or failed is left alone; a running one (its worker was lost) is
    run again from the start.

    Not one transaction: the progress updates must be visible to the job page while the export runs, and the export
    itself only reads."""
    job = ExportJob.objects.select_related("dataset", "version").filter(pk=job_id).first()
    if job is None or job.finished:
        return job  # type: ignore[return-value]
    exporter = exporters.get(job.format)
    source = exporters.ExportSource(
        dataset=job.dataset, version=job.version,
        base_url=job.base_url or os.environ.get("SITE_URL") or "http://localhost:8000", scrub=job.scrub,
    )
    total = exporter.count(source)
    file_name = f"{source.label}-{job.format}{exporter.extension}"
    folder = export_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job.pk}-{file_name}"
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.RUNNING, started_at=timezone.now(), total=total, done=0, file_name=file_name
    )

    def progress(n: int) -> None:
        ExportJob.objects.filter(pk=job.pk).update(done=n)

    tmp = path.with_name(path.name + ".part")
    try:
        with tmp.open("wb") as out:
            size = exporters.write(exporter, source, out, progress=progress)
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, error=f"{file_name}: the export stopped: {exc}", finished_at=timezone.now()
        )
        raise
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.DONE, path=str(path), size_bytes=size, finished_at=timezone.now(),
        scrub_counts=source.tally.as_dict(),
    )
    job.refresh_from_db()
    return job
