"""Fixtures for review queues: conversations to queue, two reviewers, a two-field rubric."""

from __future__ import annotations

import pytest

from annotations import services as review
from annotations.models import ScoreKind
from feedbackhub import roles
from sessions.models import Environment
from tests.annotations.conftest import make_conversation
from tests.conftest import _user


@pytest.fixture
def reviewers(db):
    return _user("rev1", roles.DOMAIN_EXPERT), _user("rev2", roles.MODERATOR)


@pytest.fixture
def rubric(moderator):
    helpful = review.score_config_save(actor=moderator, key="helpfulness", name="Helpfulness", kind=ScoreKind.NUMERIC,
                                       minimum=1, maximum=5, step=1)
    tone = review.score_config_save(actor=moderator, key="tone", name="Tone", kind=ScoreKind.CATEGORICAL,
                                    options=["good", "neutral", "rude"])
    return helpful, tone


@pytest.fixture
def production_conversations(db):
    """Two production conversations with two replies each (4 replies) and one staging conversation."""
    made = []
    for i in range(2):
        c = make_conversation(replies=[f"Reply {i}a is fine.", f"Reply {i}b is wrong."], external_id=f"prod-{i}")
        c.environment = Environment.PROD
        c.save(update_fields=["environment"])
        made.append(c)
    other = make_conversation(replies=["Staging reply."], external_id="stage-0")
    other.environment = Environment.TEST
    other.save(update_fields=["environment"])
    return made
