"""How triage plugs into recall (connected in ``TriageConfig.ready()``):

- each cluster's guidance note is returned with the cases the recall API recalls from that cluster
  (``annotations.recall.api.GUIDANCE_PROVIDERS``);
- its clusters are a source review queues can be built from (``annotations.reply_sources``);
- feedback items that just got their vectors (``annotations.recall.events.feedback_items_embedded``) are clustered
  at once (``triage.cluster_new``, one queued at a time), so live feedback reaches the triage queue within seconds
  rather than at the next scheduled run.
"""

from __future__ import annotations

from django.dispatch import receiver

from annotations import reply_sources
from annotations.recall.api import GUIDANCE_PROVIDERS
from annotations.recall.events import feedback_items_embedded
from annotations.triage.selectors import queue_cluster_choices, queue_cluster_turns_sql, recall_guidance
from annotations.triage.tasks import cluster_new
from feedbackhub.outbox import enqueue_once_on_commit

if recall_guidance not in GUIDANCE_PROVIDERS:
    GUIDANCE_PROVIDERS.append(recall_guidance)
reply_sources.register(reply_sources.ReplySource(
    key="cluster", label="A triage cluster", choices=queue_cluster_choices, turns_sql=queue_cluster_turns_sql,
))


@receiver(feedback_items_embedded, dispatch_uid="triage.feedback_items_embedded")
def cluster_embedded(sender, **_) -> None:
    enqueue_once_on_commit(cluster_new)
