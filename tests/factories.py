"""Plain functions that create conversation logs through the ORM for tests.

They fill the denormalised columns the import pipeline maintains (title, turn_count, feedback_kinds,
has_negative_feedback, search_vector) the same way, so list filters and search behave as after a real import.

    conv = make_conversation(turns=[("user", "How do I reset my password?"), ("assistant", "Open Settings...")],
                             feedback={1: [{"kind": "thumbs_down", "text": "wrong menu"}]})
    conv = make_conversation(environment="dev", started_at=None)            # two default turns
    turn = add_turn(conv, role="assistant", content="...", retrieved_documents=[{"id": "kb-1", "score": 0.8}])
    add_feedback(turn, kind="rating", rating=2)
    refresh_summary(conv)                                                  # after adding turns/feedback by hand
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.contrib.postgres.search import SearchVector
from django.db.models import Value

from sessions.models import (
    NEGATIVE_KINDS,
    RATING_NEGATIVE_MAX,
    SEARCH_CONFIG,
    Conversation,
    FeedbackEvent,
    FeedbackKind,
    Turn,
)

#: Conversations made without ``started_at`` start one minute apart from here, each newer than the last.
BASE_TIME = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
_counter = itertools.count(1)

DEFAULT_TURNS: tuple[tuple[str, str], ...] = (
    ("user", "How do I reset my password?"),
    ("assistant", "Open Settings, choose Security, then Reset password."),
)
_UNSET: Any = object()


def make_conversation(
    *,
    turns: Sequence[tuple[str, str] | Mapping[str, Any]] = DEFAULT_TURNS,
    feedback: Mapping[int, Iterable[Mapping[str, Any]]] | None = None,
    started_at: dt.datetime | None = _UNSET,
    **fields: Any,
) -> Conversation:
    """Create a conversation with its turns and feedback, and fill the denormalised columns.

    ``turns``: (role, content) pairs or dicts of Turn fields (``role`` and ``content`` at least).
    ``feedback``: {turn position: [dicts of FeedbackEvent fields, ``kind`` at least]}.
    Other keyword arguments are Conversation fields (source, environment, model_version, metadata...).
    """
    n = next(_counter)
    if started_at is _UNSET:
        started_at = BASE_TIME + dt.timedelta(minutes=n)
    values: dict[str, Any] = {
        "source": "test-app",
        "external_id": f"conv-{n}",
        "content_hash": f"{n:064x}",
        "environment": "prod",
        "model_version": "gpt-test-1",
        "user_role": "customer",
        "app_version": "1.0.0",
        "end_user_id": f"user-{n % 7}",
        "started_at": started_at,
        "ended_at": started_at + dt.timedelta(minutes=3) if started_at else None,
    }
    values.update(fields)
    conversation = Conversation.objects.create(**values)
    for spec in turns:
        data = {"role": spec[0], "content": spec[1]} if isinstance(spec, tuple) else dict(spec)
        add_turn(conversation, **data)
    for position, events in (feedback or {}).items():
        turn = conversation.turns.get(position=position)
        for event in events:
            add_feedback(turn, **event)
    return refresh_summary(conversation, keep_title="title" in fields)


def add_turn(conversation: Conversation, *, role: str = "user", content: str = "", **fields: Any) -> Turn:
    """Append a turn (``position`` defaults to the next free one). Call ``refresh_summary`` afterwards."""
    if "position" not in fields:
        fields["position"] = conversation.turns.count()
    if "created_at" not in fields and conversation.started_at is not None:
        fields["created_at"] = conversation.started_at + dt.timedelta(seconds=10 * fields["position"])
    return Turn.objects.create(conversation=conversation, role=role, content=content, **fields)


def add_feedback(turn: Turn, *, kind: str, **fields: Any) -> FeedbackEvent:
    """Add a feedback event; ``is_negative`` follows the importer's rule unless given."""
    if "is_negative" not in fields:
        rating = fields.get("rating")
        fields["is_negative"] = kind in NEGATIVE_KINDS or (
            kind == FeedbackKind.RATING and rating is not None and rating <= RATING_NEGATIVE_MAX
        )
    fields.setdefault("event_key", f"ev-{next(_counter)}")
    if "created_at" not in fields and turn.created_at is not None:
        fields["created_at"] = turn.created_at + dt.timedelta(seconds=5)
    return FeedbackEvent.objects.create(conversation_id=turn.conversation_id, turn=turn, kind=kind, **fields)


def refresh_summary(conversation: Conversation, *, keep_title: bool = True) -> Conversation:
    """Recompute title (when empty or not kept), turn_count, feedback_kinds, has_negative_feedback and
    search_vector from the stored turns and feedback, as the import pipeline does."""
    turns = list(conversation.turns.order_by("position").values_list("role", "content"))
    events = list(conversation.feedback_events.values_list("kind", "is_negative"))
    title = conversation.title
    if not (keep_title and title):
        title = next((content[:200] for role, content in turns if role == "user" and content), "")
    search_text = "\n".join([title, *(content for _, content in turns if content)])
    Conversation.objects.filter(pk=conversation.pk).update(
        title=title,
        turn_count=len(turns),
        feedback_kinds=sorted({kind for kind, _ in events}),
        has_negative_feedback=any(negative for _, negative in events),
        search_vector=SearchVector(Value(search_text), config=SEARCH_CONFIG),
    )
    conversation.refresh_from_db()
    return conversation


def make_conversations(count: int, **fields: Any) -> list[Conversation]:
    """``count`` conversations with the default two turns, each started one minute after the previous one."""
    return [make_conversation(**fields) for _ in range(count)]
