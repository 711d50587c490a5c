"""The import benchmark at a tiny size, on the test database: the pipeline, the re-import and the raw COPY each
run in a child process, store exactly what the file holds, and report the child's peak memory."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.conf import settings

from bench import common, datagen, import_bench

pytestmark = pytest.mark.django_db(transaction=True)


def _test_db_url() -> str:
    """The test database as a URL, for the child processes (settings name it once the test database exists)."""
    db = settings.DATABASES["default"]
    auth = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'], safe='')}"


def test_pipeline_reimport_and_raw_copy_store_the_same_rows(tmp_path):
    path = tmp_path / "small.jsonl"
    stats = datagen.write_jsonl(path, 40, seed=9)
    db_url = _test_db_url()

    imported = import_bench._step_row(1, 40, "import", import_bench.run_child(
        "pipeline", path, db_url, work_dir=tmp_path), stats)
    assert import_bench._check(imported, stats) == []
    assert imported["batch"]["created"] == 40
    assert imported["peak_rss_mib"] > 10

    again = import_bench._step_row(1, 40, "re-import", import_bench.run_child(
        "pipeline", path, db_url, work_dir=tmp_path), stats)
    assert import_bench._check(again, stats, expect_unchanged=True) == []

    import_bench.reset(db_url)
    manifest = import_bench.prepare_copy_files(path, db_url, tmp_path / "copy")
    assert [t["rows"] for t in manifest["tables"]] == [40, stats["turns"], stats["feedback"]]
    copied = import_bench._step_row(1, 40, "raw COPY", import_bench.run_child(
        "copy", tmp_path / "copy", db_url, work_dir=tmp_path), stats)
    assert import_bench._check(copied, stats) == []

    idle = import_bench.run_child("idle", path, db_url, work_dir=tmp_path)
    ctx = common.Context(quick=True, repeats=1)
    result = import_bench.summarise(ctx, (40,), {40: (path, stats)}, [imported, again, copied], idle, [], [])
    names = [v["name"] for v in result["verdicts"]]
    assert any("Ratio to a raw COPY" in n for n in names)
    assert result["data"]["per_size"][0]["ratio_to_copy"] > 0


def test_a_wrong_count_is_reported_as_a_problem():
    stats = {"conversations": 2, "turns": 5, "feedback": 1}
    row = {"step": "import", "stored": {"conversations": 2, "turns": 4, "feedback": 1},
           "batch": {"rejected": 1, "unchanged": 0}, "status": "partial"}
    problems = import_bench._check(row, stats, expect_unchanged=True)
    assert len(problems) == 4


def test_a_failing_child_raises(tmp_path):
    with pytest.raises(import_bench.BenchError):
        import_bench.run_child("copy", tmp_path / "missing", _test_db_url(), work_dir=tmp_path)
