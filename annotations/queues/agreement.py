"""Agreement between reviewers: Krippendorff's alpha, Cohen's kappa and span F1. Pure functions on plain data
(no database), written out from the formulas in docs/queues.md and cross-checked against the ``krippendorff``
package in the tests.

- ``krippendorff_alpha``: reliability data as a reviewers x items matrix (``nan`` where a reviewer gave no value),
  nominal (labels) or interval (numbers) distance. Items with fewer than two values are not pairable and do not
  count. Undefined (``None``) when fewer than two values are pairable or every value is the same (no expected
  disagreement to compare with).
- ``cohen_kappa``: two reviewers' labels on the items both rated.
- ``span_agreement``: two reviewers' spans (item, tag, start, end in code points): exact-match F1 over whole spans
  and overlap F1 over the code points each covers, per tag.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

NOMINAL = "nominal"
INTERVAL = "interval"
LEVELS = (NOMINAL, INTERVAL)


def value_counts(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``data`` (reviewers x items, nan = missing) and the items x values matrix of how many
    reviewers gave each value to each item."""
    present = ~np.isnan(data)
    values, codes = np.unique(data[present], return_inverse=True)
    items = np.nonzero(present)[1]
    counts = np.zeros((data.shape[1], len(values)), dtype=np.float64)
    np.add.at(counts, (items, codes), 1.0)
    return values, counts


def krippendorff_alpha(data: Sequence[Sequence[float | None]] | np.ndarray, level: str = NOMINAL) -> float | None:
    """Krippendorff's alpha = 1 - D_o / D_e over the coincidence matrix of the pairable values."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    matrix = np.array(data, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("reliability data is a reviewers x items matrix")
    values, counts = value_counts(matrix)
    per_item = counts.sum(axis=1)
    pairable = per_item >= 2
    counts, per_item = counts[pairable], per_item[pairable]
    if len(values) == 0 or counts.sum() < 2:
        return None
    # o_ck = sum over items of n_uc * (n_uk - [c = k]) / (m_u - 1)
    weighted = counts / (per_item - 1)[:, None]
    coincidences = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    totals = coincidences.sum(axis=0)
    n = totals.sum()
    if level == NOMINAL:
        distance = 1.0 - np.eye(len(values))
    else:
        distance = np.subtract.outer(values, values) ** 2
    expected = float(totals @ distance @ totals)
    if expected == 0.0:
        return None
    observed = float((coincidences * distance).sum())
    return 1.0 - (n - 1.0) * observed / expected


def cohen_kappa(first: Sequence, second: Sequence) -> float | None:
    """Cohen's kappa = (p_o - p_e) / (1 - p_e) for two reviewers' labels of the same items (equal lengths).
    ``None`` when there are no items or chance agreement is already certain (both gave one and the same label)."""
    if len(first) != len(second):
        raise ValueError("both reviewers must label the same items")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    share_a: dict = defaultdict(float)
    share_b: dict = defaultdict(float)
    for a, b in zip(first, second, strict=True):
        share_a[a] += 1 / n
        share_b[b] += 1 / n
    expected = sum(share_a[label] * share_b.get(label, 0.0) for label in share_a)
    if expected >= 1.0 - 1e-12:
        return None
    return (observed - expected) / (1.0 - expected)


#: One highlighted span: (item, tag, start, end), start inclusive and end exclusive, in code points.
Span = tuple[int, int, int, int]


@dataclass(frozen=True)
class SpanAgreement:
    exact_f1: float | None
    overlap_f1: float | None
    spans_a: int
    spans_b: int
    exact_matches: int
    shared_code_points: int
    #: Code points each reviewer covered, once per (item, tag).
    covered_a: int = 0
    covered_b: int = 0


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _length(intervals: list[tuple[int, int]]) -> int:
    return sum(end - start for start, end in intervals)


def _intersection(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    """Code points covered by both of two merged, sorted interval lists."""
    i = j = total = 0
    while i < len(a) and j < len(b):
        low, high = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if low < high:
            total += high - low
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def span_agreement(first: Iterable[Span], second: Iterable[Span]) -> SpanAgreement:
    """Exact F1 = 2 |A ∩ B| / (|A| + |B|) over the sets of (item, tag, start, end); overlap F1 = 2 Σ |C_A ∩ C_B| /
    (Σ |C_A| + Σ |C_B|) where C_X is the set of code points reviewer X covered with a tag on an item, summed over
    (item, tag). Both ``None`` when neither reviewer highlighted anything."""
    spans_a, spans_b = set(first), set(second)
    if not spans_a and not spans_b:
        return SpanAgreement(None, None, 0, 0, 0, 0)
    exact = len(spans_a & spans_b)
    cover_a: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    cover_b: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for item, tag, start, end in spans_a:
        cover_a[(item, tag)].append((start, end))
    for item, tag, start, end in spans_b:
        cover_b[(item, tag)].append((start, end))
    merged_a = {key: _merged(v) for key, v in cover_a.items()}
    merged_b = {key: _merged(v) for key, v in cover_b.items()}
    covered_a, covered_b = sum(map(_length, merged_a.values())), sum(map(_length, merged_b.values()))
    size = covered_a + covered_b
    shared = sum(_intersection(merged, merged_b[key]) for key, merged in merged_a.items() if key in merged_b)
    return SpanAgreement(
        exact_f1=2 * exact / (len(spans_a) + len(spans_b)),
        overlap_f1=2 * shared / size if size else None,
        spans_a=len(spans_a),
        spans_b=len(spans_b),
        exact_matches=exact,
        shared_code_points=shared,
        covered_a=covered_a,
        covered_b=covered_b,
    )
