"""Search parameters of nearest_ids: the ef_search setting and the iterative scan modes."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from annotations.recall import selectors
from annotations.recall.selectors import RecallFilters
from tests.annotations.recall.test_search import _unit, selective_case

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
