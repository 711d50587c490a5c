"""The list benchmark at a tiny size: the data set loads with the promised selectivities and the harness checks
every filter combination's page against SQL before timing it (no timing assertions)."""

from __future__ import annotations

import pytest
from django.db import connection

from bench import common, list_bench, list_data

pytestmark = pytest.mark.django_db(transaction=True)
COUNT = 2_000


def test_dataset_is_built_once_then_reused():
    first = list_data.ensure_dataset(COUNT, log=lambda _msg: None)
    assert first["reused"] is False
    assert first["conversations"] == COUNT and first["turns"] == 2 * COUNT
    again = list_data.ensure_dataset(COUNT, log=lambda _msg: None)
    assert again["reused"] is True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT avg(has_negative_feedback::int), avg((cardinality(feedback_kinds) > 0)::int) "
            "FROM conversations_conversation"
        )
        negative, any_feedback = cursor.fetchone()
        # The denormalised columns agree with the feedback rows they summarise.
        cursor.execute(
            """
            SELECT count(*) FROM conversations_conversation c
            WHERE c.has_negative_feedback IS DISTINCT FROM EXISTS (
                SELECT 1 FROM conversations_feedbackevent f WHERE f.conversation_id = c.id AND f.is_negative)
            """
        )
        disagreeing = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM conversations_conversation WHERE search_vector IS NULL")
        without_vector = cursor.fetchone()[0]
    assert 0.1 < negative < 0.4
    assert 0.25 < any_feedback < 0.6
    assert disagreeing == 0
    assert without_vector == 0


def test_every_combination_matches_sql_and_gets_timed():
    list_data.ensure_dataset(COUNT, log=lambda _msg: None)
    client = list_bench.bench_client()
    combos = list_bench.combos(COUNT)
    problems = list_bench.resolve_urls(client, combos)
    problems += list_bench.verify(client, combos)
    assert problems == []
    assert all(c.verified.startswith("yes") for c in combos)
    assert any("after=" in c.url for c in combos if c.page == 2)
    list_bench.measure(client, combos, n=2, rounds=1)
    assert all(len(c.times_ms) == 2 for c in combos)
    ctx = common.Context(quick=True, repeats=1)
    result = list_bench.summarise(ctx, COUNT, 2, {"conversations": COUNT, "turns": 2 * COUNT, "feedback": 1},
                                  combos, problems)
    assert result["verdicts"][1]["pass"] is True
    assert len(result["tables"][0]["rows"]) == len(combos)


def test_a_filter_the_view_ignores_is_reported():
    list_data.ensure_dataset(COUNT, log=lambda _msg: None)
    client = list_bench.bench_client()
    wrong = list_bench.Combo("misnamed", {"no_such_filter": "dev"}, "environment = 'dev'")
    problems = list_bench.resolve_urls(client, [wrong]) + list_bench.verify(client, [wrong])
    assert wrong.verified == "MISMATCH"
    assert len(problems) == 1 and "misnamed" in problems[0]
