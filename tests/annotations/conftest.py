"""Fixtures for the review workspace: a conversation with user/assistant turns, created through the ORM."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from annotations import anchoring
from sessions.models import Conversation, Turn, TurnRole

REPLY = "The Eiffel Tower is in Berlin. It was completed in 1889 and is 330 metres tall."


def make_conversation(*, replies: list[str], external_id: str = "conv-1") -> Conversation:
    conversation = Conversation.objects.create(
        source="tests", external_id=external_id, content_hash="0" * 64, title="Where is the Eiffel Tower?"
    )
    turns = []
    for i, reply in enumerate(replies):
        turns.append(Turn(conversation=conversation, position=2 * i, role=TurnRole.USER, content=f"Question {i}?"))
        turns.append(Turn(conversation=conversation, position=2 * i + 1, role=TurnRole.ASSISTANT, content=reply))
    Turn.objects.bulk_create(turns)
    conversation.turn_count = len(turns)
    conversation.save(update_fields=["turn_count"])
    return conversation


def span(turn: Turn, quote: str, occurrence: int = 0) -> dict:
    """Selector kwargs for the ``occurrence``-th ``quote`` in the turn text (code points)."""
    start = -1
    for _ in range(occurrence + 1):
        start = turn.content.index(quote, start + 1)
    return {"start": start, "end": start + len(quote), "exact": quote, "text_hash": anchoring.text_hash(turn.content)}


@pytest.fixture(autouse=True)
def taxonomy(db) -> None:
    """The seeded tags, even after another test's flush emptied the tables the data migration filled."""
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)


@pytest.fixture
def conversation(db) -> Conversation:
    return make_conversation(replies=[REPLY, "Second reply with nothing wrong."])


@pytest.fixture
def reply_turn(conversation) -> Turn:
    return conversation.turns.filter(role=TurnRole.ASSISTANT).order_by("position").first()
