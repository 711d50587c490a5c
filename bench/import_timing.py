"""Where an import's time goes: wall seconds per merge step and each thread's CPU seconds, for the import benchmark.

The pipeline carries no timing code: each merge step is a function of ``sessions.imports.loading`` and the reader
is a thread class, so :func:`timed` wraps those functions while its block runs (in the benchmark's child process)
and sums their wall time per step into the dict it yields. Steps run on the caller's thread only,
except ``stored_hashes``, which the loader calls and the reader does not (it has its own look-up).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
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


def _timed(
    owner: Any, attr: str, name: str, timings: dict[str, float], clock: Callable[[], float], restore: list
) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + clock() - started

    restore.append((owner, attr, original))
    setattr(owner, attr, wrapper)


@contextlib.contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Time the pipeline's steps while the block runs; yields the dict they fill (seconds by step name).

    Wall seconds: each merge step, ``finish chunk`` (rejections and counters), ``merging chunks, in all`` and
    ``waiting for the reader``. CPU seconds: ``reader thread CPU`` (parsing, validating, hashing) and
    ``loader thread CPU`` (the whole of ``pipeline.run`` on the caller's thread).
    """
    from sessions.imports import chunking, loading, pipeline  # noqa: PLC0415 (Django must be set up first)

    timings: dict[str, float] = {}
    restore: list[tuple[Any, str, Any]] = []
    wall, cpu = time.perf_counter, time.thread_time  # thread_time: each wrapper runs on the thread it measures
    try:
        for name, function in STEPS.items():
            _timed(loading, function, name, timings, wall, restore)
        _timed(loading.Loader, "_finish_chunk", "finish chunk", timings, wall, restore)
        _timed(loading.Loader, "merge_chunk", "merging chunks, in all", timings, wall, restore)
        _timed(chunking.ChunkReader, "next_item", "waiting for the reader", timings, wall, restore)
        _timed(chunking.ChunkReader, "run", "reader thread CPU", timings, cpu, restore)
        _timed(pipeline, "run", "loader thread CPU", timings, cpu, restore)
        yield timings
    finally:
        for owner, attr, original in reversed(restore):
            setattr(owner, attr, original)
