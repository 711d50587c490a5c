"""The agreement functions against examples worked by hand (in the comments) and against the ``krippendorff``
package (the reference implementation) on random data with missing values."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest

from annotations.queues.agreement import cohen_kappa, krippendorff_alpha, span_agreement

nan = math.nan


def test_nominal_alpha_worked_by_hand():
    # A = 1 1 2 2, B = 1 2 2 2. Coincidences: o11 = 2, o12 = o21 = 1, o22 = 4; n1 = 3, n2 = 5, n = 8.
    # alpha = 1 - (n - 1) * (o12 + o21) / (n1 n2 + n2 n1) = 1 - 7 * 2 / 30 = 8/15.
    assert krippendorff_alpha([[1, 1, 2, 2], [1, 2, 2, 2]], "nominal") == pytest.approx(8 / 15)


def test_interval_alpha_worked_by_hand():
    # A = 1 2 3, B = 1 2 4. o11 = 2, o22 = 2, o34 = o43 = 1; n = (2, 2, 1, 1), 6 values.
    # Observed: sum o_ck (c - k)^2 = 2. Expected: sum n_c n_k (c - k)^2 = 2 * (4 + 8 + 18 + 2 + 8 + 1) = 82.
    # alpha = 1 - 5 * 2 / 82.
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 4]], "interval") == pytest.approx(1 - 10 / 82)


def test_items_with_one_value_do_not_count_and_missing_values_are_allowed():
    # The third column has one value only: it is not pairable, so the result is the first two columns'.
    with_single = krippendorff_alpha([[1, 2, 1], [1, 2, nan]], "nominal")
    assert with_single == pytest.approx(krippendorff_alpha([[1, 2], [1, 2]], "nominal")) == pytest.approx(1.0)


def test_undefined_when_nothing_varies_or_nothing_pairs():
    assert krippendorff_alpha([[3, 3, 3], [3, 3, 3]], "interval") is None
    assert krippendorff_alpha([[1, nan], [nan, 2]], "nominal") is None
    assert krippendorff_alpha(np.empty((0, 0)), "nominal") is None


def test_perfect_disagreement_is_below_zero():
    assert krippendorff_alpha([[1, 2, 1, 2], [2, 1, 2, 1]], "nominal") < 0


@pytest.mark.parametrize("level", ["nominal", "interval"])
@pytest.mark.parametrize("seed", range(12))
def test_alpha_equals_the_reference_implementation(level, seed):
    rng = np.random.default_rng(seed)
    reviewers, items = rng.integers(2, 5), rng.integers(5, 80)
    data = rng.integers(1, 6, size=(reviewers, items)).astype(float)
    data[rng.random(data.shape) < 0.25] = nan
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)


def test_the_textbook_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 3 coders, 12 units (nan blank).
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    assert krippendorff_alpha(data, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(data, "interval") == pytest.approx(0.849, abs=5e-4)


def test_cohen_kappa_worked_by_hand():
    # p_o = 3/4; A gives 1 and 2 half each, B 1 a quarter and 2 three quarters: p_e = 1/8 + 3/8 = 1/2.
    # kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2.
    assert cohen_kappa([1, 1, 2, 2], [1, 2, 2, 2]) == pytest.approx(0.5)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None  # chance agreement is certain
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 2])


def test_cohen_kappa_equals_nominal_alpha_in_the_large_sample_limit():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 3, 4000)
    b = np.where(rng.random(4000) < 0.7, a, rng.integers(0, 3, 4000))
    assert cohen_kappa(list(a), list(b)) == pytest.approx(krippendorff_alpha([a, b], "nominal"), abs=0.01)


def test_span_agreement_worked_by_hand():
    # A: tag 1 on [0, 10) and tag 2 on [5, 8) of item 1; B: tag 1 on [0, 10) and [20, 25).
    # Exact: one span in common of 2 + 2: F1 = 2 * 1 / 4 = 0.5.
    # Code points: A covers 10 (tag 1) + 3 (tag 2) = 13, B covers 10 + 5 = 15, shared 10 (tag 1 on [0, 10)).
    # Overlap F1 = 2 * 10 / (13 + 15) = 20 / 28.
    result = span_agreement([(1, 1, 0, 10), (1, 2, 5, 8)], [(1, 1, 0, 10), (1, 1, 20, 25)])
    assert result.exact_f1 == pytest.approx(0.5)
    assert result.overlap_f1 == pytest.approx(20 / 28)
    assert (result.spans_a, result.spans_b, result.shared_code_points) == (2, 2, 10)


def test_overlapping_spans_of_one_reviewer_count_their_code_points_once():
    # A's two spans with tag 1 cover [0, 8); B covers [4, 12): shared [4, 8) = 4, sizes 8 and 8.
    result = span_agreement([(1, 1, 0, 6), (1, 1, 2, 8)], [(1, 1, 4, 12)])
    assert result.overlap_f1 == pytest.approx(2 * 4 / 16)
    assert result.exact_f1 == 0


def test_spans_on_other_tags_or_items_do_not_overlap():
    result = span_agreement([(1, 1, 0, 10)], [(1, 2, 0, 10), (2, 1, 0, 10)])
    assert result.overlap_f1 == 0 and result.exact_f1 == 0
    assert span_agreement([], []).overlap_f1 is None
