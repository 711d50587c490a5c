"""Search parameters of nearest_ids: the ef_search setting and the iterative scan modes."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from annotations.recall import selectors
from annotations.recall.selectors import RecallFilters
from tests.annotations.recall.test_search import _synthetic, _unit, selective_case

pytestmark = pytest.mark.django_db


def _scan_settings(**kwargs) -> str:
    """The SQL of the set_config call nearest_ids makes for ``kwargs``."""
    q = _unit(np.random.default_rng(5).normal(size=384))
    with CaptureQueriesContext(connection) as ctx:
        selectors.nearest_ids(query_vector=q, k=10, **kwargs)
    return next(query["sql"] for query in ctx.captured_queries if "hnsw.ef_search" in query["sql"])


def test_ef_search_comes_from_the_setting_unless_given():
    with override_settings(RECALL_EF_SEARCH=123):
        assert selectors.default_ef_search() == 123
        assert "'123'" in _scan_settings()
        assert "'77'" in _scan_settings(ef_search=77)
    with override_settings(RECALL_EF_SEARCH=0):
        assert selectors.default_ef_search() == selectors.EF_SEARCH


def test_iterative_modes():
    assert f"'{selectors.ITERATIVE_SCAN}'" in _scan_settings()
    assert "'strict_order'" in _scan_settings(iterative="strict_order")
    assert "'off'" in _scan_settings(iterative=False)
    with pytest.raises(ValueError, match="iterative scan mode"):
        _scan_settings(iterative="sideways")


def test_strict_order_also_fills_a_selective_filter_in_exact_order():
    """As the relaxed-order test in test_search.py, with strict order: 300 near items in 'prod', 12 far ones in
    'test', plans forced onto the HNSW index."""
    q, far, ids = selective_case()
    only_test = RecallFilters(environment="test")
    assert len(selectors.nearest_ids(query_vector=q, k=10, filters=only_test, iterative=False)) < 10
    hits = selectors.nearest_ids(query_vector=q, k=10, filters=only_test, iterative="strict_order")
    exact = sorted(ids[300:], key=lambda pk: -float(far[ids.index(pk) - 300] @ q))[:10]
    assert [pk for pk, _ in hits] == exact


def _show(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_default_search_outside_a_transaction_is_one_statement_on_the_sessions_settings():


    rng = np.random.default_rng(9)
    q = _unit(rng.normal(size=384))
    ids = _synthetic([_unit(q + 0.9 * _unit(rng.normal(size=384))) for _ in range(40)],
                     environments=["prod", "test"] * 20)
    # Every database session opens with the defaults.
    assert connection.recall_search_settings == (
        selectors.ITERATIVE_SCAN, str(selectors.default_ef_search()), str(selectors.MAX_SCAN_TUPLES))
    assert _show("hnsw.iterative_scan") == selectors.ITERATIVE_SCAN
    assert _show("hnsw.ef_search") == str(selectors.default_ef_search())

    model = selectors.active_model_name()
    with CaptureQueriesContext(connection) as ctx:
        fast = selectors.nearest_ids(query_vector=q, k=10, filters=RecallFilters(environment="test"), model=model)
    assert len(ctx.captured_queries) == 1 and "set_config" not in ctx.captured_queries[0]["sql"]
    # Inside a transaction (which may carry settings of its own) the search sets them for itself: same answer.
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        slow = selectors.nearest_ids(query_vector=q, k=10, filters=RecallFilters(environment="test"), model=model)
    assert any("set_config" in query["sql"] for query in ctx.captured_queries)
    assert fast == slow and len(fast) == 10 and {pk for pk, _ in fast} <= set(ids[1::2])

    # Other settings get a transaction of their own, and the session's are back afterwards.
    with CaptureQueriesContext(connection) as ctx:
        selectors.nearest_ids(query_vector=q, k=10, ef_search=77, iterative="strict_order")
    assert any("'77'" in query["sql"] for query in ctx.captured_queries)
    assert _show("hnsw.ef_search") == str(selectors.default_ef_search())
    assert _show("hnsw.iterative_scan") == selectors.ITERATIVE_SCAN


@pytest.mark.django_db(transaction=True)
def test_without_session_settings_every_search_sets_its_own(settings):

    wrapper = connections["default"]
    settings.RECALL_SESSION_SEARCH_SETTINGS = False
    try:
        with CaptureQueriesContext(connection) as ctx:
            selectors.apply_session_search_settings(connection=wrapper)  # what a new session now gets: nothing
        assert ctx.captured_queries == [] and wrapper.recall_search_settings is None
        assert f"'{selectors.ITERATIVE_SCAN}'" in _scan_settings()  # so the search sets them for itself
    finally:
        settings.RECALL_SESSION_SEARCH_SETTINGS = True
        selectors.apply_session_search_settings(connection=wrapper)  # back as the session was
    assert wrapper.recall_search_settings is not None
