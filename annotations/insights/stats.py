"""How sure a rate is: the 95% Wilson score interval of a proportion, and the smallest sample a rate is shown as
trustworthy for.

A rate from two conversations says little: "500 negative per 1k turns" from one 2-turn conversation is 1 of 2. The
Wilson interval (unlike the normal approximation) stays inside [0, 1] and is honest for small n and for rates near
0 or 1, which is where feedback rates live.
"""

from __future__ import annotations

import math

from django.conf import settings

#: z for a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes`` out of ``n`` as proportions in [0, 1]; None when ``n`` is 0.
    Counts of events that can exceed the trials (two regenerates of one reply) are capped at ``n``."""
    if n <= 0:
        return None
    k = min(max(successes, 0), n)
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def min_sample() -> int:
    """Below this many trials (turns, conversations or replies, whatever the rate divides by) a rate is flagged as
    a small sample (INSIGHTS_MIN_SAMPLE)."""
    return int(getattr(settings, "INSIGHTS_MIN_SAMPLE", 30))
