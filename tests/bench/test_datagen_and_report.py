"""The benchmark generator writes valid native JSONL, deterministically; the report renders every result."""

from __future__ import annotations

import orjson

from bench import common, datagen, report


def test_generated_file_is_deterministic_and_sized_like_real_logs(tmp_path):
    first = datagen.write_jsonl(tmp_path / "a.jsonl", 200, seed=3)
    second = datagen.write_jsonl(tmp_path / "b.jsonl", 200, seed=3)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert first == second
    # A smaller file of the same seed is a prefix of the larger one (the 20k file is the start of the 100k one).
    datagen.write_jsonl(tmp_path / "c.jsonl", 50, seed=3)
    assert (tmp_path / "a.jsonl").read_bytes().startswith((tmp_path / "c.jsonl").read_bytes())
    assert 8 <= first["turns"] / first["conversations"] <= 12
    assert 500 <= first["bytes"] / first["turns"] <= 2000
    assert first["feedback"] > 0


def test_every_generated_record_passes_the_native_importer(tmp_path, settings):
    from sessions.imports.formats import native
    from sessions.imports.normalise import Conversation
    from sessions.imports.reader import ImportFile

    path = tmp_path / "n.jsonl"
    stats = datagen.write_jsonl(path, 120, seed=5)
    kinds = set()
    with ImportFile(path, max_file_bytes=settings.IMPORT_MAX_FILE_BYTES,
                    max_line_bytes=settings.IMPORT_MAX_LINE_BYTES) as f:
        items = list(native.iter_items(f, default_source="bench"))
    rejected = [item for item in items if not isinstance(item, Conversation)]
    assert rejected == []
    assert len(items) == stats["conversations"]
    assert sum(len(item.turns) for item in items) == stats["turns"]
    assert sum(len(item.feedback) for item in items) == stats["feedback"]
    for item in items:
        kinds.update(row[2] for row in item.feedback)
    assert {"thumbs_up", "thumbs_down", "rating", "copy", "regenerate"} <= kinds
    record = orjson.loads(path.read_bytes().splitlines()[0])
    assistant = next(t for t in record["turns"] if t["role"] == "assistant")
    assert assistant["context"]["system_prompt"] and assistant["usage"]["completion_tokens"] > 0


def test_percentile_interpolates_like_numpy():
    values = [float(v) for v in range(1, 101)]
    assert common.percentile(values, 50) == 50.5
    assert round(common.percentile(values, 95), 2) == 95.05
    assert common.percentile([7.0], 95) == 7.0
    assert common.median([3.0, 1.0, 2.0]) == 2.0


def test_database_urls_never_name_the_dev_or_test_databases(monkeypatch):
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:55432/feedbackhub")
    assert common.database_url().endswith("/feedbackhub_bench")
    assert common.database_url(import_db=True).endswith("/feedbackhub_bench_import")
    assert common.database_url(quick=True).endswith("/feedbackhub_bench_quick")
    monkeypatch.setenv("BENCH_DATABASE_URL", "postgres://u@db.example:5432/perf")
    assert common.database_url(import_db=True) == "postgres://u@db.example:5432/perf_import"


def test_report_shows_targets_results_and_machine():
    result = {
        "name": "list",
        "title": "Session list",
        "verdicts": [
            {"name": "p95", "target": "<= 80 ms", "measured": "91.0 ms", "pass": False},
            {"name": "pages", "target": "all match", "measured": "all match", "pass": True},
        ],
        "tables": [{"title": "Latency", "columns": ["combination", "p95"], "rows": [["a | b", "91.0"]]}],
        "notes": ["one note"],
        "machine": {"cpu_model": "Test CPU", "cpu_cores": 2, "ram_gib": 4, "python": "3.11", "postgresql": "18.0",
                    "date": "2024-01-01 00:00 UTC", "load_average_at_start": [0.1, 0.2, 0.3]},
    }
    text = report.markdown({"list": result})
    assert "| Session list | p95 | <= 80 ms | 91.0 ms | **FAIL** |" in text
    assert "| Session list | pages | all match | all match | pass |" in text
    assert "| a \\| b | 91.0 |" in text
    assert "Test CPU (2 cores)" in text and "18.0" in text and "## Machine" in text
    assert "- one note" in text
    assert "No results yet" in report.markdown({})
