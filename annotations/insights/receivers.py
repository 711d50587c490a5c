"""How the dashboard's rollup follows imports (connected in ``InsightsConfig.ready()``): once an import created or
updated conversations, a worker refreshes the days it wrote (docs/analytics.md, freshness)."""

from __future__ import annotations

from django.dispatch import receiver

from annotations.insights.tasks import rollup_refresh_batch
from feedbackhub.outbox import enqueue_on_commit
from sessions.events import conversations_imported


@receiver(conversations_imported, dispatch_uid="insights.conversations_imported")
def refresh_imported_days(sender, *, batch_id: int, **_) -> None:
    enqueue_on_commit(rollup_refresh_batch, batch_id)
