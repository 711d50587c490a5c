"""Triage settings and their defaults (each can be set in the environment, see .env.example and docs/triage.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "TRIAGE_ASSIGN_DISTANCE": 0.35,
    "TRIAGE_NEW_CLUSTER_DISTANCE": 0.45,
    "TRIAGE_MERGE_DISTANCE": 0.25,
    "TRIAGE_SPLIT_DISTANCE": 0.45,
    "TRIAGE_BATCH_SIZE": 10000,
    "TRIAGE_CLAIM_MINUTES": 30,
    "TRIAGE_SLA_HOURS": 48,
    "TRIAGE_BATCH_PAUSE_SECONDS": 0.0,
}


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
