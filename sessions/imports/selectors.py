"""Reads for the import pages: recent batches, one batch with its report."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from sessions.imports import runs
from sessions.models import ImportBatch, ImportRejection, ImportStatus

RECENT_BATCHES = 50
#: Rejections shown on the report page; the batch's ``records_rejected`` says how many there were in all.
REJECTIONS_SHOWN = 200

UNFINISHED = (ImportStatus.QUEUED, ImportStatus.RUNNING)


def import_batch_recent(*, limit: int = RECENT_BATCHES) -> QuerySet[ImportBatch]:
    return ImportBatch.objects.select_related("created_by").order_by("-created_at", "-id")[:limit]


@dataclass(frozen=True)
class BatchReport:
    batch: ImportBatch
    finished: bool
    rejections: list[ImportRejection]
    rejections_hidden: int
    #: Failed or stalled, with its upload still on the server: the page offers Retry.
    can_retry: bool = False
    #: Running, but its worker has not reported for IMPORT_STALE_SECONDS (the sweeper will requeue it).
    stale: bool = False


def import_batch_report(*, pk: int) -> BatchReport:
    """One batch; once it has finished, also its first rejections. Two queries at most."""
    batch = get_object_or_404(ImportBatch.objects.select_related("created_by"), pk=pk)
    finished = batch.status not in UNFINISHED
    rejections: list[ImportRejection] = []
    if finished and batch.records_rejected:
        rejections = list(batch.rejections.order_by("line", "id")[:REJECTIONS_SHOWN])
    hidden = max(0, batch.records_rejected - len(rejections)) if finished else 0
    stale_seconds = settings.IMPORT_STALE_SECONDS
    return BatchReport(
        batch=batch,
        finished=finished,
        rejections=rejections,
        rejections_hidden=hidden,
        can_retry=runs.can_retry(batch, stale_seconds=stale_seconds),
        stale=runs.is_stale(batch, stale_seconds=stale_seconds),
    )
