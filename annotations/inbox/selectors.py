"""Reads of the inbox: the header's unread count, the inbox page, and the users ``@`` may complete to."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import BooleanField, ExpressionWrapper, Q

from annotations.inbox.models import Notification

PAGE_SIZE = 50
SUGGESTIONS = 8


def unread_count(user) -> int:
    """One count over the partial index of unread items."""
    if not user.is_authenticated:
        return 0
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()


def header(user, *, on_inbox: bool = False, count: bool = True) -> dict:
    """The header's inbox link: the unread count (unless ``count`` is false: pages leave it to the first poll, so no
    page pays a query for it), whether it is the current page, and how often to poll."""
    return {
        "unread": unread_count(user) if count else None,
        "on_inbox": on_inbox,
        "poll_seconds": int(getattr(settings, "INBOX_POLL_SECONDS", 15)),
    }


@dataclass
class InboxPage:
    items: list[Notification]
    unread: int
    page: int
    has_next: bool


def inbox_page(user, *, page: int = 1, size: int = PAGE_SIZE) -> InboxPage:
    """``user``'s items, unread first, newest first within each; page ``page`` of ``size``."""
    offset = (page - 1) * size
    rows = list(
        Notification.objects.filter(recipient_id=user.pk)
        .select_related("actor")
        .order_by(ExpressionWrapper(Q(read_at__isnull=True), output_field=BooleanField()).desc(), "-created_at", "-id")[
            offset : offset + size + 1
        ]
    )
    return InboxPage(items=rows[:size], unread=unread_count(user), page=page, has_next=len(rows) > size)


def user_suggestions(prefix: str, *, exclude_id: int | None = None, limit: int = SUGGESTIONS) -> list[dict]:
    """Active users whose username (or first or last name) starts with ``prefix``, usernames first."""
    users = get_user_model().objects.filter(is_active=True)
    if prefix:
        users = users.filter(
            Q(username__istartswith=prefix) | Q(first_name__istartswith=prefix) | Q(last_name__istartswith=prefix)
        )
    if exclude_id is not None:
        users = users.exclude(pk=exclude_id)
    rows = users.order_by("username").values("username", "first_name", "last_name")[:limit]
    return [{"username": r["username"], "name": f"{r['first_name']} {r['last_name']}".strip()} for r in rows]
