"""How review queues plug into the review workspace and the import (connected in ``QueuesConfig.ready()``):

- reviewers of a queue asking for several independent reviews see only their own work on its items until they
  complete them (``annotations.visibility``);
- live queues take in new matches as soon as an import or live conversations finish (``queues.refresh_live``).
"""

from __future__ import annotations

from django.dispatch import receiver

from annotations import visibility
from annotations.queues.selectors import blind_turns
from annotations.queues.tasks import refresh_live
from feedbackhub.outbox import enqueue_once_on_commit
from sessions.events import conversations_imported

visibility.register(blind_turns)


@receiver(conversations_imported, dispatch_uid="queues.conversations_imported")
def refresh_live_queues(sender, **_) -> None:
    enqueue_once_on_commit(refresh_live)
