"""What recall announces to the feature apps above it (they subscribe in their ``AppConfig.ready()``)."""

from __future__ import annotations

from django.dispatch import Signal

#: Feedback items got their vectors (a worker's embedding run). Keyword arguments: ``count`` (int). Triage clusters
#: them at once rather than at its next scheduled run.
feedback_items_embedded = Signal()
