"""What the conversation-logs app announces. Apps above it (review, recall, insights...) subscribe in their
``AppConfig.ready()``; this app never imports them.

Each event is sent by the service that made the change, after its rows are written and inside its transaction when
it has one: a receiver that hands work to a worker does it with ``feedbackhub.outbox.enqueue_on_commit``, so the task
is sent only once the change is committed (and kept in the outbox while Redis is down).
"""

from __future__ import annotations

from django.dispatch import Signal

#: An import batch finished and created or updated conversations (their turns and end-user feedback events).
#: Keyword arguments: ``batch_id`` (int).
conversations_imported = Signal()

#: The stored text of these turns changed (a re-import of an edited conversation): anything anchored in the old
#: text must follow. Keyword arguments: ``turn_ids`` (list of int).
turn_texts_changed = Signal()

#: End-user feedback events arrived live (the feedback API, the widget), outside any import.
#: Keyword arguments: ``event_ids`` (list of int).
feedback_received = Signal()
