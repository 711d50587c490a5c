"""How recall follows the apps below it (connected in ``RecallConfig.ready()``).

- Reviewer feedback changed (``annotations.events.feedback_changed``): a worker re-syncs the annotation's feedback
  item and the resolution of the turn's items (``recall.sync_feedback``, coalesced).
- An import created or updated conversations (``sessions.events.conversations_imported``): a worker syncs the
  feedback items of the batch's end-user feedback events, set-based (``recall.sync_import_batch``).
- End-user feedback arrived live (``sessions.events.feedback_received``): a worker makes items of the events
  (``recall.sync_feedback_events``).
- A web process is starting (``feedbackhub.events.web_process_starting``): the query encoder loads before the first
  request (``RECALL_WARMUP``).
- Every new database connection gets recall's search settings (``RECALL_SESSION_SEARCH_SETTINGS``).

Tasks go through the outbox, so a save while Redis is down still succeeds and the work is sent once it is back.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from annotations.events import feedback_changed
from annotations.recall import querying
from annotations.recall.selectors import apply_session_search_settings
from annotations.recall.tasks import sync_feedback, sync_feedback_events, sync_import_batch
from feedbackhub.events import web_process_starting
from feedbackhub.outbox import enqueue_on_commit, enqueue_once_on_commit
from sessions.events import conversations_imported, feedback_received

logger = logging.getLogger(__name__)

connection_created.connect(apply_session_search_settings, dispatch_uid="recall.session_search_settings")


@receiver(feedback_changed, dispatch_uid="recall.feedback_changed")
def sync_changed_feedback(sender, *, annotation_id: int | None = None, turn_id: int | None = None, **_) -> None:
    """The request that saved the feedback pays only for the enqueue; the worker builds the item text and enqueues its
    embedding. Not sent again while one for the same ids is queued and has not started."""
    kwargs = {k: v for k, v in (("annotation_id", annotation_id), ("turn_id", turn_id)) if v is not None}
    if kwargs:
        enqueue_once_on_commit(sync_feedback, **kwargs)


@receiver(conversations_imported, dispatch_uid="recall.conversations_imported")
def sync_imported_feedback(sender, *, batch_id: int, **_) -> None:
    enqueue_on_commit(sync_import_batch, batch_id)


@receiver(feedback_received, dispatch_uid="recall.feedback_received")
def sync_received_feedback(sender, *, event_ids: list[int], **_) -> None:
    if event_ids:
        enqueue_on_commit(sync_feedback_events, list(event_ids))


@receiver(web_process_starting, dispatch_uid="recall.warm_up")
def warm_up_query_encoder(sender, **_) -> None:
    if not settings.RECALL_WARMUP:
        return
    try:
        querying.warm_up()
    except Exception:  # a web process without the model still serves every other page
        logger.exception("could not warm up the embedding model")
