"""Where an import's time goes: wall seconds per merge step and each thread's CPU seconds, for the import benchmark.

The pipeline carries no timing code: each merge step is a function of ``sessions.imports.loading`` and the reader
is a thread class, so :func:`install` wraps those functions (in the benchmark's child process only, before the
import runs) and sums their wall time per step into the dict it returns. Steps run on the caller's thread only,
except ``stored_hashes``, which the loader calls and the reader does not (it has its own look-up).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

#: Step name (as reported in bench/results/import.json) -> the loader function that does it.
STEPS = {
    "lookup": "stored_hashes",
    "staging set-up": "prepare_staging",
    "copy conversations": "copy_conversations",
    "upsert conversations": "upsert_conversations",
    "copy turns": "copy_turns",
    "upsert turns": "upsert_turns",
    "surplus turns": "surplus_turns",
    "copy feedback": "copy_feedback",
    "stale feedback": "stale_feedback",
    "upsert feedback": "upsert_feedback",
}


def _timed(owner: Any, attr: str, name: str, timings: dict[str, float], clock: Callable[[], float]) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + clock() - started

    setattr(owner, attr, wrapper)


def install() -> dict[str, float]:
    """Wrap the pipeline's steps with timers; returns the dict they fill (seconds by step name).

    Wall seconds: each merge step, ``finish chunk`` (rejections and counters), ``merging chunks, in all`` and
    ``waiting for the reader``. CPU seconds: ``reader thread CPU`` (parsing, validating, hashing) and
    ``loader thread CPU`` (the whole of ``pipeline.run`` on the caller's thread).
    """
    from sessions.imports import chunking, loading, pipeline  # noqa: PLC0415 (Django must be set up first)

    timings: dict[str, float] = {}
    for name, function in STEPS.items():
        _timed(loading, function, name, timings, time.perf_counter)
    _timed(loading.Loader, "_finish_chunk", "finish chunk", timings, time.perf_counter)
    _timed(loading.Loader, "merge_chunk", "merging chunks, in all", timings, time.perf_counter)
    _timed(chunking.ChunkReader, "next_item", "waiting for the reader", timings, time.perf_counter)
    # thread_time is per thread: each wrapper starts and stops its clock on the thread it measures.
    _timed(chunking.ChunkReader, "run", "reader thread CPU", timings, time.thread_time)
    _timed(pipeline, "run", "loader thread CPU", timings, time.thread_time)
    return timings
