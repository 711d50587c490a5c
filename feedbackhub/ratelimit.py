"""Per-client request limits kept in Redis (through the cache framework), for the machine-facing endpoints.

A fixed one-minute window per client: the first request of a window creates its counter (``cache.add`` with the
window's lifetime), each request increments it, and a request past the limit is refused with the seconds until the
window ends (for ``Retry-After``). Every web process shares the counters, so the limit holds for the fleet.

When Redis is unreachable the cache answers misses (``feedbackhub.cache``) and the limit is not enforced: losing
live feedback is worse than letting a burst through.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the window ends (the ``Retry-After`` of a refusal).
    reset_seconds: int


def hit(client: str, *, limit: int, now: float | None = None) -> Verdict:
    """Count one request of ``client`` (e.g. ``"ingest-token:12"``) against ``limit`` requests a minute."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    reset = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
    key = f"ratelimit:{client}:{window}"
    try:
        count = cache.incr(key)  # one round trip for every request but a window's first
    except ValueError:
        # The window's first request: create the counter (add() is a no-op if another request just did), which
        # outlives its window a little so a late incr still finds it.
        cache.add(key, 0, timeout=WINDOW_SECONDS + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted again, or Redis unreachable: let it through
            return Verdict(True, limit, limit, reset)
    return Verdict(count <= limit, limit, max(0, limit - count), reset)


def headers(verdict: Verdict) -> dict[str, str]:
    """The ``RateLimit-*`` headers of an answer (and ``Retry-After`` on a refusal)."""
    out = {
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(verdict.remaining),
        "RateLimit-Reset": str(verdict.reset_seconds),
    }
    if not verdict.allowed:
        out["Retry-After"] = str(verdict.reset_seconds)
    return out
