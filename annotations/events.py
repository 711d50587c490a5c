"""What the review app announces. Feature apps (recall, triage, curation, insights) subscribe in their
``AppConfig.ready()``; this app never imports them.

Events are sent by the service that made the change, inside its transaction: a receiver that hands work to a worker
does it with ``feedbackhub.outbox`` (``enqueue_on_commit`` / ``enqueue_once_on_commit``), so nothing is sent for a
change that rolls back.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Reviewer feedback changed: an annotation was created, edited, retagged, resolved or reopened, deleted, or its
#: suggestion decided (``annotation_id``), and/or the corrections of a turn changed what counts as resolved on it
#: (``turn_id``). Keyword arguments: ``annotation_id`` (int or None), ``turn_id`` (int or None), and ``created``
#: (True when the annotation is new; absent otherwise).
feedback_changed = Signal()
