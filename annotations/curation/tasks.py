"""Celery adapters of the curation app: take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from annotations.curation import services


@shared_task(name="curation.tasks.export_job_run", ignore_result=True, acks_late=True)
def export_job_run(job_id: int) -> None:
    """Write the export of job ``job_id`` to its file. Safe to deliver twice: a finished job is left alone."""
    services.export_job_run(job_id=job_id)
