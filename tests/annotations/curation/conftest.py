"""Fixtures for curation: conversations with a system prompt, replies with approved corrections, annotations."""

from __future__ import annotations

import importlib
import itertools

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User

from annotations import anchoring
from annotations import services as review
from annotations.curation import services
from annotations.models import Correction, Tag
from feedbackhub import roles
from sessions.models import Conversation, Turn, TurnRole

_ids = itertools.count(1)
SYSTEM = "You are the support assistant of Acme. Answer briefly."
REPLY = "The Eiffel Tower is in Berlin. It was completed in 1889."
FIXED = "The Eiffel Tower is in Paris. It was completed in 1889."


@pytest.fixture(autouse=True)
def taxonomy(db) -> None:
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)


def make_reply(*, question: str = "Where is the Eiffel Tower?", reply: str = REPLY, history: int = 1,
               model_version: str = "gpt-test-1", environment: str = "prod") -> Turn:
    """A conversation of ``history`` earlier user/assistant exchanges, then ``question`` and the assistant ``reply``
    (with the system prompt); returns the reply turn."""
    n = next(_ids)
    conversation = Conversation.objects.create(
        source="tests", external_id=f"cur-{n}", content_hash=f"{n:064x}", title=question,
        model_version=model_version, environment=environment,
    )
    turns = []
    for i in range(history):
        turns.append(Turn(conversation=conversation, position=2 * i, role=TurnRole.USER, content=f"Hello {i}"))
        turns.append(Turn(conversation=conversation, position=2 * i + 1, role=TurnRole.ASSISTANT,
                          content=f"Hi {i}, how can I help?", system_prompt=SYSTEM))
    turns.append(Turn(conversation=conversation, position=2 * history, role=TurnRole.USER, content=question))
    turns.append(Turn(conversation=conversation, position=2 * history + 1, role=TurnRole.ASSISTANT, content=reply,
                      system_prompt=SYSTEM, model_version=model_version))
    Turn.objects.bulk_create(turns)
    return Turn.objects.get(conversation=conversation, position=2 * history + 1)


def writer():
    """The expert who writes corrections here; ``expert`` approves them and their examples (four-eyes)."""
    user, _ = User.objects.get_or_create(username="writer")
    user.groups.add(Group.objects.get_or_create(name=roles.DOMAIN_EXPERT)[0])
    return user


def approve(turn: Turn, expert, *, text: str = FIXED, rationale: str = "Paris, not Berlin.", author=None) -> Correction:
    """A correction of ``turn`` written by ``author`` (``writer()`` by default) and approved by ``expert``."""
    correction = review.correction_save(actor=author or writer(), turn=turn, text=text, rationale=rationale)
    return review.correction_approve(actor=expert, correction_id=correction.pk, version=correction.version)


def tag_span(turn: Turn, actor, quote: str, *, body: str = "", tag_names=("factually incorrect",), **kw):
    start = turn.content.index(quote)
    tags = list(Tag.objects.filter(name__in=tag_names).values_list("pk", flat=True))
    return review.annotation_create(
        actor=actor, turn=turn, body=body, tag_ids=tags, start=start, end=start + len(quote), exact=quote,
        text_hash=anchoring.text_hash(turn.content), **kw,
    )


@pytest.fixture
def dataset(expert):
    return services.dataset_create(actor=expert, name="Geography fixes", description="Corrected facts.")


@pytest.fixture
def curated(dataset, expert, moderator):
    """A dataset with two approved examples (one tagged, one with a formula-looking reply) and one proposed."""
    first = make_reply()
    tag_span(first, moderator, "Berlin", body="Wrong city")
    c1 = approve(first, expert)
    second = make_reply(question="=1+1?", reply="@SUM(A1:A2) is 2", history=0)
    c2 = approve(second, expert, text="-2 is wrong; it is 2", rationale="+ sign")
    third = make_reply(question="Capital of Italy?", reply="Milan.")
    c3 = approve(third, expert, text="Rome.")
    services.examples_add(actor=moderator, dataset=dataset, correction_ids=[c1.pk, c2.pk, c3.pk])
    for example in dataset.examples.order_by("id")[:2]:
        services.example_review(actor=expert, example_id=example.pk, decision="approve", notes="ok")
    return dataset
