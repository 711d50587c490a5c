"""The conversation-log builders older test folders call, as thin aliases of the factories in
``tests/sessions/factories.py`` (which follow the importer's rules for the denormalised columns).

    conv = make_conversation(turns=[("user", "How do I reset my password?"), ("assistant", "Open Settings...")],
                             feedback={1: [{"kind": "thumbs_down", "text": "wrong menu"}]})
    turn = add_turn(conv, role="assistant", content="...")
    add_feedback(turn, kind="rating", rating=2)
    refresh_summary(conv)
"""

from __future__ import annotations

from typing import Any

from sessions.models import Conversation, FeedbackEvent, Turn
from tests.sessions.factories import (
    BASE_TIME,
    DEFAULT_TURNS,
    ConversationFactory,
    FeedbackEventFactory,
    TurnFactory,
    refresh_summary,
)

__all__ = [
    "BASE_TIME", "DEFAULT_TURNS", "add_feedback", "add_turn", "make_conversation", "make_conversations",
    "refresh_summary",
]  # fmt: skip


def make_conversation(**fields: Any) -> Conversation:
    """``ConversationFactory(**fields)``."""
    return ConversationFactory(**fields)


def make_conversations(count: int, **fields: Any) -> list[Conversation]:
    """``count`` conversations with the default two turns, each started one minute after the previous one."""
    return ConversationFactory.create_batch(count, **fields)


def add_turn(conversation: Conversation, *, role: str = "user", content: str = "", **fields: Any) -> Turn:
    """``TurnFactory``: append a turn. Call ``refresh_summary`` afterwards."""
    return TurnFactory(conversation=conversation, role=role, content=content, **fields)


def add_feedback(turn: Turn, *, kind: str, **fields: Any) -> FeedbackEvent:
    """``FeedbackEventFactory``: a feedback event on ``turn``."""
    return FeedbackEventFactory(turn=turn, kind=kind, **fields)
