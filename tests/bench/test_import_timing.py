"""The import benchmark's step timings follow the pipeline's step functions, and leave them as they were."""

from __future__ import annotations

import pytest

from bench import import_timing
from sessions.imports import loading, pipeline
from sessions.services import import_file
from tests.sessions.imports.conftest import conversation, jsonl

pytestmark = pytest.mark.django_db


def test_every_merge_step_is_timed_and_the_pipeline_is_restored(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl([conversation(f"c-{i}") for i in range(3)]))
    import_file(path=path, source="s")
    path.write_bytes(jsonl([conversation(f"c-{i}", turns=2 + i % 2) for i in range(5)]))
    originals = {name: getattr(loading, name) for name in import_timing.STEPS.values()}
    with import_timing.timed() as timings:
        import_file(path=path, source="s")  # updates one, creates two, leaves two
    # (the native format's reader looks stored hashes up itself, so the loader's "lookup" does not run)
    steps = {"staging set-up", "copy conversations", "upsert conversations", "copy turns", "upsert turns"}
    assert set(timings) >= {*steps, "finish chunk", "waiting for the reader", "reader thread CPU", "loader thread CPU"}
    assert all(seconds >= 0 for seconds in timings.values())
    assert {name: getattr(loading, name) for name in originals} == originals
    assert not hasattr(pipeline.run, "__wrapped__")
