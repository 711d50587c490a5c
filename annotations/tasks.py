"""Celery adapters for the review workspace: take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from annotations import services
from sessions.models import Turn


@shared_task
def reanchor_turns(turn_ids: list[int]) -> int:
    """Re-anchor the annotations of turns whose text changed (enqueue after a re-import or a redaction commits)."""
    changed = 0
    for turn in Turn.objects.filter(pk__in=turn_ids):
        changed += services.annotations_reanchor(turn=turn)
    return changed
