"""Import speed and memory: the real pipeline on generated native JSONL, against a raw COPY of the same rows.

Two file sizes (20k and 100k conversations, about 10 turns each). In each repeat, for the 100k file:

1. empty the import database, then import the file through ``sessions.services.import_file`` (fresh import);
2. import the same file again: every conversation is unchanged (re-import);
3. empty the database, then ``COPY`` the same rows straight into the same tables (baseline, see bench.copy_rows).

The 20k file is imported fresh in each repeat too, to show that the import's peak memory does not grow with the
file.

Each step runs in its own process (bench.import_child); its peak RSS is the process's own high-water mark
(``VmHWM``, read by the child at its end), so it covers everything the import process touched and nothing of the
benchmark process that started it. Rates are turns stored per second of the step's wall time.
The ratio pipeline / COPY is taken within one repeat, so both sides see the same machine load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from bench import common, datagen

NAME = "import"
TITLE = "Import: native JSONL through the real pipeline"
FULL_SIZES = (20_000, 100_000)
QUICK_SIZES = (300, 1_000)
TARGET_TURNS_PER_S = 50_000
TARGET_RATIO = 0.3
RSS_LIMIT_MIB = 500
PEER_TURNS_PER_S = 21_000


class BenchError(RuntimeError):
    pass


def pipeline_available() -> bool:
    """True when the import pipeline (``sessions.services.import_file``) exists in this checkout."""
    path = common.BASE_DIR / "sessions" / "services.py"
    return path.exists() and "def import_file" in path.read_text()


def reset(db_url: str) -> None:
    """Empty every conversations table (and what references them) and flush dirty pages, so runs start equal."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'conversations\\_%'"
            )
        ]
        if tables:
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass  # needs superuser or pg_checkpoint; only a fairness nicety


def run_child(mode: str, path: Path, db_url: str, *, work_dir: Path) -> dict[str, Any]:
    """Run one bench.import_child step; return its result plus ``peak_rss_mib`` from the kernel's accounting."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=work_dir, suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.import_child", mode, str(path), str(out)],
            env=common.bench_environment(db_url),
            cwd=common.BASE_DIR,
        )
        # wait4 returns this child's own rusage (its CPU time below).
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise BenchError(f"bench.import_child {mode} {path.name} exited with {proc.returncode}")
        result = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    # The child's own high-water mark after exec (VmHWM, which it reports): wait4's ru_maxrss also counts the pages
    # the child shared with this process between fork and exec, so a parent that loaded a model (another benchmark
    # of the same run) would show as the import's memory.
    hwm_kib = result.get("vm_hwm_kib") or usage.ru_maxrss
    result["peak_rss_mib"] = round(hwm_kib / 1024, 1)
    # CPU the import process itself used (start-up included); the rest of the wall time is the database's work
    # and waiting for a CPU on the shared machine.
    result["process_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    return result


def prepare_copy_files(jsonl: Path, db_url: str, out_dir: Path) -> dict[str, Any]:
    """Write (or reuse) the COPY files of ``jsonl`` in a child process; returns the manifest."""
    subprocess.run(
        [sys.executable, "-m", "bench.copy_rows", str(jsonl), str(out_dir)],
        env=common.bench_environment(db_url),
        cwd=common.BASE_DIR,
        check=True,
    )
    return json.loads((out_dir / "manifest.json").read_text())


def _step_row(repeat: int, size: int, step: str, result: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    seconds = result["seconds"]
    turns = stats["turns"]
    return {
        "repeat": repeat,
        "conversations": size,
        "step": step,
        "seconds": round(seconds, 3),
        "turns": turns,
        "turns_per_s": round(turns / seconds) if seconds else None,
        "conversations_per_s": round(size / seconds) if seconds else None,
        "input_mib_per_s": round(stats["bytes"] / 1024**2 / seconds, 1) if seconds else None,
        "peak_rss_mib": result["peak_rss_mib"],
        "process_cpu_s": result.get("process_cpu_s"),
        "stored": result.get("stored"),
        "batch": result.get("batch"),
        "timings": result.get("timings") or {},
        "status": result.get("status"),
    }


def _check(row: dict[str, Any], stats: dict[str, Any], *, expect_unchanged: bool = False) -> list[str]:
    """Problems with a step's outcome: wrong stored counts, rejected records, an unexpected batch status."""
    problems = []
    stored = row.get("stored") or {}
    for key in ("conversations", "turns", "feedback"):
        if stored.get(key) != stats[key]:
            problems.append(f"{row['step']}: stored {stored.get(key)} {key}, the file has {stats[key]}")
    batch = row.get("batch")
    if batch is not None:
        if row.get("status") != "done":
            problems.append(f"{row['step']}: batch status {row.get('status')!r}")
        if batch.get("rejected"):
            problems.append(f"{row['step']}: {batch['rejected']} records rejected")
        if expect_unchanged and batch.get("unchanged") != stats["conversations"]:
            problems.append(
                f"{row['step']}: {batch.get('unchanged')} unchanged, expected all {stats['conversations']}"
            )
    return problems


def run(ctx: common.Context) -> dict[str, Any]:
    sizes = QUICK_SIZES if ctx.quick else FULL_SIZES
    db_url = common.database_url(import_db=True, quick=ctx.quick)
    ctx.log(f"import benchmark on {db_url.rsplit('/', 1)[-1]}: sizes {', '.join(f'{s:,}' for s in sizes)}")
    common.migrate(db_url)
    have_pipeline = pipeline_available()
    notes: list[str] = []
    if not have_pipeline:
        notes.append("The import pipeline (sessions.services.import_file) is not in this checkout yet: "
                     "only the raw COPY baseline and memory were measured.")

    files: dict[int, tuple[Path, dict[str, Any]]] = {}
    manifests: dict[int, dict[str, Any]] = {}
    for size in sorted(sizes, reverse=True):
        ctx.log(f"generating (or reusing) the native JSONL file of {size:,} conversations")
        files[size] = datagen.cached_file(ctx.work_dir, size)
        if size == max(sizes) or not have_pipeline:
            ctx.log(f"preparing (or reusing) the COPY rows of {size:,} conversations")
            manifests[size] = prepare_copy_files(files[size][0], db_url, ctx.work_dir / f"copy-{size}")

    ctx.log("baseline process memory (Django set up and connected, nothing imported)")
    idle = run_child("idle", files[sizes[0]][0], db_url, work_dir=ctx.work_dir)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    largest = max(sizes)
    for repeat in range(1, ctx.repeats + 1):
        for size in sizes:
            path, stats = files[size]
            # Smaller files only show that memory stays flat; the rates and the ratio are taken on the largest.
            full = size == largest
            if have_pipeline:
                reset(db_url)
                ctx.log(f"repeat {repeat}: import {size:,} conversations ({stats['turns']:,} turns)")
                row = _step_row(repeat, size, "import", run_child("pipeline", path, db_url, work_dir=ctx.work_dir),
                                stats)
                problems += _check(row, stats)
                rows.append(row)
                ctx.log(f"  {row['turns_per_s']:,} turns/s, peak RSS {row['peak_rss_mib']} MiB")
                if full:
                    ctx.log(f"repeat {repeat}: re-import the same {size:,} conversations")
                    row = _step_row(repeat, size, "re-import",
                                    run_child("pipeline", path, db_url, work_dir=ctx.work_dir), stats)
                    problems += _check(row, stats, expect_unchanged=True)
                    rows.append(row)
                    ctx.log(f"  {row['turns_per_s']:,} turns/s, peak RSS {row['peak_rss_mib']} MiB")
            if full or not have_pipeline:
                reset(db_url)
                ctx.log(f"repeat {repeat}: raw COPY of the same rows ({size:,} conversations)")
                row = _step_row(repeat, size, "raw COPY",
                                run_child("copy", ctx.work_dir / f"copy-{size}", db_url, work_dir=ctx.work_dir),
                                stats)
                problems += _check(row, stats)
                rows.append(row)
                ctx.log(f"  {row['turns_per_s']:,} turns/s, peak RSS {row['peak_rss_mib']} MiB")
    reset(db_url)
    return summarise(ctx, sizes, files, rows, idle, problems, notes)


def summarise(
    ctx: common.Context,
    sizes: tuple[int, ...],
    files: dict[int, tuple[Path, dict[str, Any]]],
    rows: list[dict[str, Any]],
    idle: dict[str, Any],
    problems: list[str],
    notes: list[str],
) -> dict[str, Any]:
    largest = max(sizes)

    def of(size: int, step: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["conversations"] == size and r["step"] == step]

    per_size = []
    for size in sizes:
        imports, reimports, copies = of(size, "import"), of(size, "re-import"), of(size, "raw COPY")
        ratios = []
        for repeat in range(1, ctx.repeats + 1):
            imp = [r for r in imports if r["repeat"] == repeat]
            cop = [r for r in copies if r["repeat"] == repeat]
            if imp and cop:
                ratios.append(imp[0]["turns_per_s"] / cop[0]["turns_per_s"])
        per_size.append({
            "conversations": size,
            "turns": files[size][1]["turns"],
            "import_turns_per_s": _median([r["turns_per_s"] for r in imports]),
            "reimport_turns_per_s": _median([r["turns_per_s"] for r in reimports]),
            "copy_turns_per_s": _median([r["turns_per_s"] for r in copies]),
            "ratio_to_copy": round(common.median(ratios), 3) if ratios else None,
            "ratios_per_repeat": [round(r, 3) for r in ratios],
            "import_peak_rss_mib": max((r["peak_rss_mib"] for r in imports + reimports), default=None),
        })
    big = next(p for p in per_size if p["conversations"] == largest)
    rss_values = [p["import_peak_rss_mib"] for p in per_size if p["import_peak_rss_mib"] is not None]
    verdicts = [
        _verdict(f"Import rate, {largest:,} conversations ({big['turns']:,} turns), median of {ctx.repeats}",
                 f">= {TARGET_TURNS_PER_S:,} turns/s", big["import_turns_per_s"],
                 lambda v: v >= TARGET_TURNS_PER_S, "{:,} turns/s"),
        _verdict("Ratio to a raw COPY of the same rows (same repeat), median", f">= {TARGET_RATIO}",
                 big["ratio_to_copy"], lambda v: v >= TARGET_RATIO, "{:.2f}"),
        _verdict(f"Peak RSS of the import process, any size ({' / '.join(f'{s:,}' for s in sizes)} conversations)",
                 f"< {RSS_LIMIT_MIB} MiB", max(rss_values) if rss_values else None,
                 lambda v: v < RSS_LIMIT_MIB,
                 "max {:.0f} MiB (" + ", ".join(f"{p['conversations']:,}: {p['import_peak_rss_mib']:.0f}"
                                               for p in per_size if p["import_peak_rss_mib"] is not None) + ")"),
        _verdict("Re-import of the unchanged file (all unchanged), median", "(reported)",
                 big["reimport_turns_per_s"], None, "{:,} turns/s"),
    ]
    if problems:
        verdicts.append({"name": "Stored rows match the file; nothing rejected; re-import all unchanged",
                         "target": "no problems", "measured": f"{len(problems)} problems", "pass": False})
    file_rows = [
        [f"{size:,}", f"{stats['turns']:,}", f"{stats['feedback']:,}", f"{stats['bytes'] / 1024**2:,.0f} MiB",
         f"{stats['bytes'] / stats['turns']:,.0f} B"]
        for size, (_path, stats) in sorted(files.items())
    ]
    run_rows = [
        [str(r["repeat"]), f"{r['conversations']:,}", r["step"], f"{r['seconds']:.2f}", f"{r['turns_per_s']:,}",
         f"{r['conversations_per_s']:,}", f"{r['input_mib_per_s']:.1f}", f"{r['process_cpu_s']:.1f}",
         f"{r['peak_rss_mib']:.0f}"]
        for r in rows
    ]
    fresh = [r for r in of(largest, "import") if r["timings"]]
    step_names = sorted({k for r in fresh for k in r["timings"]}, key=lambda k: (k.endswith(" CPU"), k))
    wall = common.median([r["seconds"] for r in fresh]) if fresh else 0.0
    step_seconds = {name: common.median([r["timings"].get(name, 0.0) for r in fresh]) for name in step_names}
    time_rows = [
        [name, f"{seconds:.2f}", "-" if name.endswith(" CPU") or not wall else f"{100 * seconds / wall:.0f}%"]
        for name, seconds in step_seconds.items()
    ]
    summary_rows = [
        [f"{p['conversations']:,}", _fmt(p["import_turns_per_s"]), _fmt(p["reimport_turns_per_s"]),
         _fmt(p["copy_turns_per_s"]), "-" if p["ratio_to_copy"] is None else f"{p['ratio_to_copy']:.2f}",
         "-" if p["import_peak_rss_mib"] is None else f"{p['import_peak_rss_mib']:.0f}"]
        for p in per_size
    ]
    if big["import_turns_per_s"]:
        notes.append(
            f"Reference: a peer annotation tool imports about {PEER_TURNS_PER_S:,} turns/s of un-normalised JSON "
            f"on this machine; the pipeline's median here is {big['import_turns_per_s'] / PEER_TURNS_PER_S:.1f}x "
            "that."
        )
    if big["copy_turns_per_s"] and big["copy_turns_per_s"] < TARGET_TURNS_PER_S:
        notes.append(
            f"On this machine a raw COPY of these rows into these tables reaches {big['copy_turns_per_s']:,} "
            f"turns/s, below the {TARGET_TURNS_PER_S:,} turns/s target: with turns of this size (about "
            f"{files[largest][1]['bytes'] / files[largest][1]['turns']:,.0f} bytes of JSONL each, system prompt and "
            "retrieved documents included) a pipeline that writes them into these tables is bounded by about that "
            "rate here, so the ratio to COPY is the measure of the pipeline's own overhead."
        )
    notes.append(
        f"An idle import process (Django set up and connected) peaks at {idle['peak_rss_mib']:.0f} MiB; the "
        "import's peak above that is what it holds while streaming."
    )
    notes.append(
        "The raw COPY loads the rows the pipeline COPYs for the same file (sessions.imports.pipeline.copy_rows), "
        "with ids assigned in advance and no search vector, in one transaction; it skips parsing, validation, "
        "staging and the idempotent merge, so it is the floor for writing these rows, measured on the same tables "
        "with the same indexes and foreign keys."
    )
    if time_rows:
        notes.append(
            "Where the time went: the loader thread's wall seconds per merge step (it waits for PostgreSQL in the "
            "COPY and upsert steps, and for the reader thread in 'waiting for the reader'); 'merging chunks, in "
            "all' also holds what the named steps leave out (look-ups for updated conversations, building the rows); "
            "then each thread's own CPU seconds: the reader parses, validates and hashes the records, the loader "
            "formats the COPY rows. On 2 cores both threads and the PostgreSQL backend share two CPUs."
        )
    notes += [f"Problem: {p}" for p in problems]
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "verdicts": verdicts,
        "tables": [
            {"title": "Generated files (seeded, native JSONL)",
             "columns": ["conversations", "turns", "feedback events", "size", "bytes/turn"], "rows": file_rows},
            {"title": "Summary (medians over repeats)",
             "columns": ["conversations", "import turns/s", "re-import turns/s", "raw COPY turns/s",
                         "import / COPY", "import peak RSS MiB"], "rows": summary_rows},
            {"title": "Every step", "columns": ["repeat", "conversations", "step", "seconds", "turns/s",
                                                "conversations/s", "JSONL MiB/s", "process CPU s", "peak RSS MiB"],
             "rows": run_rows},
            {"title": f"Where the fresh import of {largest:,} conversations spent its time (medians over repeats)",
             "columns": ["step", "seconds", "share of wall time"], "rows": time_rows},
        ],
        "notes": notes,
        "data": {"per_size": per_size, "runs": rows, "idle_peak_rss_mib": idle["peak_rss_mib"],
                 "files": {str(k): v[1] for k, v in files.items()}},
    }


def _median(values: list[float | None]) -> int | None:
    present = [v for v in values if v is not None]
    return round(common.median(present)) if present else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,}"


def _verdict(name: str, target: str, measured: Any, check: Any, fmt: str) -> dict[str, Any]:
    if measured is None:
        return {"name": name, "target": target, "measured": "not measured", "pass": None}
    return {"name": name, "target": target, "measured": fmt.format(measured), "value": measured,
            "pass": None if check is None else bool(check(measured))}
