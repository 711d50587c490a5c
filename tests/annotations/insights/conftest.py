"""Fixtures for the insights tests: a small, varied set of sessions over a few days."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import make_conversation

DAY1 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)  # a Monday


@pytest.fixture
def varied_sessions(db):
    """Sessions on 2026-03-02..04 across two model versions, two environments and two roles, with feedback of
    several kinds and categories; one session without a start time (never counted)."""
    made = []
    specs = [
        # day offset, model, env, role, app, feedback {turn position: [events]}
        (0, "m-a", "prod", "customer", "1.0", {1: [{"kind": "thumbs_down", "categories": ["too vague"]},
                                                  {"kind": "regenerate"}]}),
        (0, "m-a", "prod", "customer", "1.0", {1: [{"kind": "thumbs_up"}, {"kind": "copy"}]}),
        (0, "m-b", "dev", "employee", "1.0", {1: [{"kind": "abandon"}]}),
        (1, "m-a", "prod", "employee", "2.0",
         {1: [{"kind": "rating", "rating": 1, "categories": ["wrong", "too vague"]}]}),
        (1, "m-b", "prod", "customer", "2.0", None),
        (2, "m-b", "dev", "customer", "2.0", {1: [{"kind": "correction", "correction": "Fixed."},
                                                 {"kind": "copy"}, {"kind": "copy", "event_key": "second-copy"}]}),
    ]
    for offset, model, env, role, app, feedback in specs:
        made.append(make_conversation(
            started_at=DAY1 + dt.timedelta(days=offset, minutes=len(made)), model_version=model, environment=env,
            user_role=role, app_version=app, feedback=feedback,
            turns=[("user", "Question?"), ("assistant", "Answer."), ("user", "More?"), ("assistant", "Sure.")],
        ))
    made.append(make_conversation(started_at=None, model_version="m-a", feedback={1: [{"kind": "thumbs_down"}]}))
    return made
