"""factory_boy factories for conversation logs.

The denormalised columns the import pipeline maintains (title, turn_count, feedback_kinds, has_negative_feedback,
search_vector) and a feedback event's ``is_negative`` come from the importer's own rules
(``sessions.imports.normalise.summary`` and ``feedback_is_negative``), so list filters and search behave as after a
real import.

    conv = ConversationFactory(turns=[("user", "How do I reset my password?"), ("assistant", "Open Settings...")],
                               feedback={1: [{"kind": "thumbs_down", "text": "wrong menu"}]})
    conv = ConversationFactory(environment="dev", started_at=None)          # the two default turns
    turn = TurnFactory(conversation=conv, role="assistant", retrieved_documents=[{"id": "kb-1", "score": 0.8}])
    FeedbackEventFactory(turn=turn, kind="rating", rating=2)
    refresh_summary(conv)                                                  # after adding turns/feedback by hand
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import factory
from django.contrib.postgres.search import SearchVector
from django.db.models import Value
from factory.django import DjangoModelFactory

from sessions.imports.normalise import feedback_is_negative, summary
from sessions.models import SEARCH_CONFIG, Conversation, FeedbackEvent, FeedbackKind, ImportBatch, ImportRejection, Turn

#: Conversations made without ``started_at`` start one minute apart from here, each newer than the last.
BASE_TIME = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)

DEFAULT_TURNS: tuple[tuple[str, str], ...] = (
    ("user", "How do I reset my password?"),
    ("assistant", "Open Settings, choose Security, then Reset password."),
)


def refresh_summary(conversation: Conversation, *, keep_title: bool = True) -> Conversation:
    """Recompute the denormalised columns from the stored turns and feedback, as the importer does; the title is
    recomputed when empty or not kept."""
    turns = list(conversation.turns.order_by("position").values_list("role", "content"))
    derived = summary(turns, conversation.feedback_events.values_list("kind", "is_negative"))
    title = conversation.title if keep_title and conversation.title else derived.title
    Conversation.objects.filter(pk=conversation.pk).update(
        title=title,
        turn_count=derived.turn_count,
        feedback_kinds=derived.feedback_kinds,
        has_negative_feedback=derived.has_negative_feedback,
        search_vector=SearchVector(Value(derived.search_text), config=SEARCH_CONFIG),
    )
    conversation.refresh_from_db()
    return conversation


class TurnFactory(DjangoModelFactory):
    """A turn appended to ``conversation`` (the next free position). Call ``refresh_summary`` afterwards."""

    class Meta:
        model = Turn

    conversation = factory.SubFactory("tests.sessions.factories.ConversationFactory", turns=())
    position = factory.LazyAttribute(lambda o: o.conversation.turns.count())
    role = "user"
    content = ""
    created_at = factory.LazyAttribute(
        lambda o: o.conversation.started_at + dt.timedelta(seconds=10 * o.position)
        if o.conversation.started_at is not None
        else None
    )


class FeedbackEventFactory(DjangoModelFactory):
    """A feedback event on ``turn``; ``is_negative`` follows the importer's rule unless given."""

    class Meta:
        model = FeedbackEvent

    turn = factory.SubFactory(TurnFactory, role="assistant", content="An answer.")
    conversation_id = factory.SelfAttribute("turn.conversation_id")
    kind = FeedbackKind.THUMBS_DOWN
    rating = None
    is_negative = factory.LazyAttribute(lambda o: feedback_is_negative(o.kind, o.rating))
    event_key = factory.Sequence(lambda n: f"ev-{n}")
    created_at = factory.LazyAttribute(
        lambda o: o.turn.created_at + dt.timedelta(seconds=5) if o.turn.created_at is not None else None
    )


class ConversationFactory(DjangoModelFactory):
    """A conversation with its turns and feedback, and the denormalised columns filled.

    ``turns``: (role, content) pairs or dicts of Turn fields (``role`` and ``content`` at least).
    ``feedback``: {turn position: [dicts of FeedbackEvent fields, ``kind`` at least]}.
    Other keyword arguments are Conversation fields (source, environment, model_version, metadata...).
    """

    class Meta:
        model = Conversation

    source = "test-app"
    external_id = factory.Sequence(lambda n: f"conv-{n}")
    content_hash = factory.Sequence(lambda n: f"{n:064x}")
    environment = "prod"
    model_version = "gpt-test-1"
    user_role = "customer"
    app_version = "1.0.0"
    end_user_id = factory.Sequence(lambda n: f"user-{n % 7}")
    started_at = factory.Sequence(lambda n: BASE_TIME + dt.timedelta(minutes=n + 1))
    ended_at = factory.LazyAttribute(lambda o: o.started_at + dt.timedelta(minutes=3) if o.started_at else None)
    turns: Sequence[tuple[str, str] | Mapping[str, Any]] = DEFAULT_TURNS
    feedback: Mapping[int, Iterable[Mapping[str, Any]]] | None = None

    @classmethod
    def _create(cls, model_class: type[Conversation], *args: Any, **kwargs: Any) -> Conversation:
        turns = kwargs.pop("turns")
        feedback = kwargs.pop("feedback")
        conversation = model_class.objects.create(*args, **kwargs)
        for spec in turns:
            fields = {"role": spec[0], "content": spec[1]} if isinstance(spec, tuple) else dict(spec)
            TurnFactory(conversation=conversation, **fields)
        for position, events in (feedback or {}).items():
            turn = conversation.turns.get(position=position)
            for event in events:
                FeedbackEventFactory(turn=turn, **event)
        return refresh_summary(conversation)


class ImportBatchFactory(DjangoModelFactory):
    """An import batch row (no file behind it): for the import pages' tests."""

    class Meta:
        model = ImportBatch

    file_name = factory.Sequence(lambda n: f"logs-{n}.jsonl")
    source = "s"


class ImportRejectionFactory(DjangoModelFactory):
    class Meta:
        model = ImportRejection

    batch = factory.SubFactory(ImportBatchFactory)
    line = factory.Sequence(lambda n: n + 1)
    reason = "bad"


def _native_turns(conv_id: str, count: int) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for i in range(count):
        if i % 2 == 0:
            turns.append({"role": "user", "content": f"How do I reset my password? ({conv_id} q{i})"})
            continue
        turns.append({
            "role": "assistant",
            "content": f"Open Settings, then Security. ({conv_id} a{i})",
            "created_at": "2026-03-01T10:00:05Z",
            "latency_ms": 850,
            "usage": {"prompt_tokens": 120, "completion_tokens": 40},
            "model_version": "support-llm-2026-02",
            "confidence": 0.8,
            "context": {
                "system_prompt": "You are the support assistant.",
                "retrieved_documents": [{"id": "kb-12", "score": 0.91, "title": "Passwords", "text": "..."}],
                "tool_calls": [{"id": "call-1", "name": "lookup_user", "arguments": {"id": 7}, "result": "ok"}],
            },
        })  # fmt: skip
    return turns


class NativeRecordFactory(factory.DictFactory):
    """A small valid record of the native import format (docs/import-format.md): ``turn_count`` alternating
    user/assistant turns, the assistant ones with context. Input for the importer, not rows: the importer decides
    what it stores."""

    class Params:
        turn_count = 2

    id = factory.Sequence(lambda n: f"conv-{n}")
    user = factory.LazyFunction(lambda: {"id": "u-9f2", "role": "customer"})
    environment = "prod"
    model_version = "support-llm-2026-02"
    app_version = "4.2.0"
    started_at = "2026-03-01T10:00:00Z"
    ended_at = "2026-03-01T10:05:00Z"
    metadata = factory.LazyFunction(lambda: {"locale": "en-GB"})
    turns = factory.LazyAttribute(lambda o: _native_turns(o.id, o.turn_count))
