"""The reviewer's next items, rendered ahead of time: while they read the item they just opened, a worker renders
the review workspace of the items they would get next (``queues.warm_upcoming``), so "Complete and next" finds their
replies and cards in the fragment cache (``annotations.fragments``) and renders nothing anew. A reply opened for
the first time costs about 30 ms more to render (its turns are read in full and their Markdown rendered).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.utils import timezone

from annotations.queues import sql
from annotations.queues.models import ReviewQueue
from annotations.views import review_context

#: How many of the reviewer's next items are rendered ahead.
UPCOMING = 2


def warm_upcoming(queue_id: int, reviewer_id: int, count: int = UPCOMING) -> int:
    """Render the workspace of the reviewer's next ``count`` items as they will see it (their permissions, their
    blind view); returns how many were rendered. Reads only, apart from the fragment cache."""
    queue = ReviewQueue.objects.filter(pk=queue_id, is_archived=False).first()
    reviewer = get_user_model().objects.filter(pk=reviewer_id, is_active=True).first()
    if queue is None or reviewer is None:
        return 0
    request = HttpRequest()
    request.method = "GET"
    request.user = reviewer
    conversations = sql.upcoming_conversations(queue.pk, reviewer.pk, queue.reviews_per_item, timezone.now(), count)
    for conversation_id in conversations:
        review_context(request, conversation_id)
    return len(conversations)
