"""Dataset exports: time and peak memory of ``manage.py export_dataset`` over 100k curated examples, in the OpenAI
chat, DPO-pair and CSV formats (and the Hugging Face folder), against a bare read-and-``json.dumps`` loop.

The examples are generated once in a database of their own (``feedbackhub_bench_export``): one dataset of 100k
approved examples, each with a system prompt of about 300 characters, three earlier messages, and an original and a
corrected reply of about 600 characters each, so a line of OpenAI JSONL is about 2.5 kB.

Each export runs as its own process, exactly as an operator runs it (``python manage.py export_dataset --format F
--dataset NAME OUT --no-progress``); its peak RSS comes from ``wait4``'s resource usage, so it covers everything the
process touched, Django's start-up included. The baseline is a process that reads the same rows through a psycopg
server-side cursor and writes ``json.dumps({"messages": [...]})`` per row: the floor for reading and serialising
them in Python. The ratio export / baseline is taken within one repeat.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import common

NAME = "export"
TITLE = "Exports: 100k curated examples to JSONL, DPO pairs, CSV and a HF folder"
FULL_SIZE = 100_000
QUICK_SIZE = 2_000
FORMATS = ("openai", "dpo", "csv", "hf")
TARGET_FORMATS = ("openai", "dpo", "csv")
RSS_LIMIT_MIB = 300
DATASET = "bench-export"
DB_SUFFIX = "_export"


class BenchError(RuntimeError):
    pass


def database_url(*, quick: bool) -> str:
    url = common.database_url(quick=quick)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + DB_SUFFIX))


# The rows are made by PostgreSQL itself (generate_series), seeded by the example number: the same data every time.
GENERATE_SQL = """
INSERT INTO curation_example (dataset_id, status, proposed_by_id, reviewed_by_id, reviewer_notes, system_prompt,
    messages, original, corrected, rationale, tags, metadata, created_at, updated_at)
SELECT %(dataset)s, 'approved', %(user)s, %(user)s, '',
    'You are the support assistant of Acme Corp. Answer briefly, cite the knowledge base, never invent prices. '
        || repeat(md5(i::text), 6),
    jsonb_build_array(
        jsonb_build_object('role', 'user',
                           'content', 'How do I configure feature ' || i || '? ' || repeat(md5((i + 1)::text), 2)),
        jsonb_build_object('role', 'assistant',
                           'content', 'Open Settings, then Advanced. ' || repeat(md5((i + 2)::text), 3)),
        jsonb_build_object('role', 'user', 'content', 'And then? "quoted" = +1 ' || repeat(md5((i + 3)::text), 2))),
    'To configure feature ' || i || ', open the admin console. ' || repeat(md5((i + 4)::text) || ' ', 17),
    'To configure feature ' || i || ', open Settings > Advanced. ' || repeat(md5((i + 5)::text) || ' ', 17),
    'The admin console was retired in 2.0.',
    ARRAY['factually incorrect', 'incomplete'],
    jsonb_build_object('source', 'bench', 'external_id', 'conv-' || i, 'conversation_id', i, 'turn_id', i,
                       'model_version', 'model-' || (i %% 3), 'environment', 'prod'),
    now(), now()
FROM generate_series(1, %(count)s) AS i
"""


def ensure_dataset(db_url: str, size: int, ctx: common.Context) -> None:
    """Create the bench dataset with ``size`` approved examples unless it is there already."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT id FROM curation_dataset WHERE name = %s", [DATASET]).fetchone()
        if row is not None:
            count = conn.execute("SELECT count(*) FROM curation_example WHERE dataset_id = %s", [row[0]]).fetchone()
            if count and count[0] == size:
                ctx.log(f"reusing {size:,} examples in {urlsplit(db_url).path.lstrip('/')}")
                return
            conn.execute("DELETE FROM curation_example WHERE dataset_id = %s", [row[0]])
            conn.execute("DELETE FROM curation_dataset WHERE id = %s", [row[0]])
        user = conn.execute("SELECT id FROM auth_user WHERE username = 'bench-curator'").fetchone()
        if user is None:
            user = conn.execute(
                "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
                "is_active, date_joined) VALUES ('!', false, 'bench-curator', '', '', '', false, true, now()) "
                "RETURNING id"
            ).fetchone()
        dataset = conn.execute(
            "INSERT INTO curation_dataset (name, slug, description, created_by_id, created_at, updated_at) "
            "VALUES (%s, %s, 'Generated for the export benchmark.', %s, now(), now()) RETURNING id",
            [DATASET, DATASET, user[0]],
        ).fetchone()
        t0 = time.perf_counter()
        conn.execute(GENERATE_SQL, {"dataset": dataset[0], "user": user[0], "count": size})
        conn.execute("VACUUM ANALYZE curation_example")
        ctx.log(f"generated {size:,} examples in {time.perf_counter() - t0:.1f} s")


def _run(args: list[str], db_url: str) -> tuple[float, float, float]:
    """Run ``args`` in a child process; (wall seconds, peak RSS MiB, CPU seconds) from the kernel's accounting."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=common.bench_environment(db_url), cwd=common.BASE_DIR,
                            stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise BenchError(f"{' '.join(args[1:4])} exited with {code}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def export_once(fmt: str, db_url: str, out_dir: Path) -> dict[str, Any]:
    out = out_dir / (f"export-{fmt}" + ("" if fmt == "hf" else ".out"))
    seconds, rss, cpu = _run(
        [sys.executable, str(common.BASE_DIR / "manage.py"), "export_dataset", "--format", fmt, "--dataset", DATASET,
         "--no-progress", str(out)],
        db_url,
    )
    return {"seconds": seconds, "peak_rss_mib": rss, "cpu_s": cpu, "bytes": _size_of(out)}


def baseline_once(db_url: str, out_dir: Path) -> dict[str, Any]:
    out = out_dir / "baseline.jsonl"
    seconds, rss, cpu = _run([sys.executable, "-m", "bench.export_bench", "baseline", db_url, str(out)], db_url)
    return {"seconds": seconds, "peak_rss_mib": rss, "cpu_s": cpu, "bytes": out.stat().st_size}


def baseline(db_url: str, out: str) -> None:
    """The floor: read the rows with a server-side cursor and json.dumps an OpenAI-style line for each."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(db_url) as conn, conn.cursor(name="rows") as cursor, open(out, "w", encoding="utf-8") as f:
        cursor.itersize = 2000
        cursor.execute(
            "SELECT e.system_prompt, e.messages, e.corrected FROM curation_example e JOIN curation_dataset d "
            "ON d.id = e.dataset_id WHERE d.name = %s AND e.status = 'approved' ORDER BY e.id", [DATASET]
        )
        for system_prompt, messages, corrected in cursor:
            line = {"messages": [{"role": "system", "content": system_prompt}, *messages,
                                 {"role": "assistant", "content": corrected}]}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


def run(ctx: common.Context) -> dict[str, Any]:
    size = QUICK_SIZE if ctx.quick else FULL_SIZE
    db_url = database_url(quick=ctx.quick)
    ctx.log(f"export benchmark on {urlsplit(db_url).path.lstrip('/')}: {size:,} examples x {ctx.repeats} repeats")
    common.migrate(db_url)
    ensure_dataset(db_url, size, ctx)
    out_dir = ctx.work_dir / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    # An idle process: Django set up and connected to the database, nothing exported.
    idle_s, idle_rss, _ = _run([sys.executable, str(common.BASE_DIR / "manage.py"), "shell", "-c",
                                "from django.db import connection; connection.ensure_connection()"], db_url)
    rows: list[dict[str, Any]] = []
    for repeat in range(1, ctx.repeats + 1):
        base = baseline_once(db_url, out_dir)
        rows.append({"repeat": repeat, "format": "baseline (psycopg + json.dumps)", **base})
        ctx.log(f"  repeat {repeat} baseline: {base['seconds']:.1f} s, {base['peak_rss_mib']:.0f} MiB")
        for fmt in FORMATS:
            result = export_once(fmt, db_url, out_dir)
            result["ratio"] = result["seconds"] / base["seconds"]
            rows.append({"repeat": repeat, "format": fmt, **result})
            ctx.log(f"  repeat {repeat} {fmt}: {result['seconds']:.1f} s, {result['peak_rss_mib']:.0f} MiB")
    for path in out_dir.glob("export-*.out"):
        path.unlink()
    return summarise(ctx, size, rows, idle_rss, idle_s)


def summarise(
    ctx: common.Context, size: int, rows: list[dict[str, Any]], idle_rss: float, idle_s: float
) -> dict[str, Any]:
    def of(fmt: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["format"] == fmt]

    summary = []
    for fmt in ("baseline (psycopg + json.dumps)", *FORMATS):
        runs = of(fmt)
        seconds = common.median([r["seconds"] for r in runs])
        cpu = common.median([r["cpu_s"] for r in runs])
        summary.append({
            "format": fmt,
            "seconds": round(seconds, 2),
            "cpu_s": round(cpu, 1),
            "examples_per_s": round(size / seconds),
            "mib": round(runs[0]["bytes"] / 1024**2, 1),
            "mib_per_s": round(runs[0]["bytes"] / 1024**2 / seconds, 1),
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1),
            "ratio": round(common.median([r["ratio"] for r in runs]), 2) if "ratio" in runs[0] else None,
        })
    by_format = {s["format"]: s for s in summary}
    base_cpu = summary[0]["cpu_s"]
    for s in summary[1:]:
        s["cpu_ratio"] = round(s["cpu_s"] / base_cpu, 2) if base_cpu else None
    worst = max(by_format[f]["peak_rss_mib"] for f in TARGET_FORMATS)
    verdicts = [
        {
            "name": f"Peak RSS of export_dataset, {size:,} examples (openai, dpo, csv)",
            "target": f"< {RSS_LIMIT_MIB} MiB",
            "measured": "max {:.0f} MiB ({})".format(
                worst, ", ".join(f"{f}: {by_format[f]['peak_rss_mib']:.0f}" for f in TARGET_FORMATS)),
            "value": worst,
            "pass": worst < RSS_LIMIT_MIB,
        },
        {
            "name": f"Peak RSS of the hf folder export, {size:,} examples",
            "target": "(reported)",
            "measured": f"{by_format['hf']['peak_rss_mib']:.0f} MiB",
            "value": by_format["hf"]["peak_rss_mib"],
            "pass": None,
        },
        {
            "name": "Time of the openai export / bare json.dumps loop over the same rows, median",
            "target": "(reported)",
            "measured": f"{by_format['openai']['ratio']:.2f}x wall, {by_format['openai']['cpu_ratio']:.2f}x CPU",
            "value": by_format["openai"]["ratio"],
            "pass": None,
        },
    ]
    table = [
        [s["format"], f"{s['seconds']:.2f}", f"{s['examples_per_s']:,}", f"{s['mib']:,.1f}", f"{s['mib_per_s']:.1f}",
         f"{s['peak_rss_mib']:.0f}", "-" if s["ratio"] is None else f"{s['ratio']:.2f}", f"{s['cpu_s']:.1f}",
         "-" if s.get("cpu_ratio") is None else f"{s['cpu_ratio']:.2f}"]
        for s in summary
    ]
    every = [
        [str(r["repeat"]), r["format"], f"{r['seconds']:.2f}", f"{r['cpu_s']:.1f}", f"{r['peak_rss_mib']:.0f}"]
        for r in rows
    ]
    notes = [
        f"An idle Django process (set up and connected, nothing exported) peaks at {idle_rss:.0f} MiB here; an "
        "export's peak above that is what it holds while streaming: one chunk of 2,000 rows and about 256 kB of "
        "output.",
        f"Wall times include the process start (the idle Django process took {idle_s:.1f} s in this run) and, for "
        "the exports, the count query before the rows; the baseline starts no Django. On a shared, loaded machine "
        "the process CPU time is the steadier measure of the exporter's own cost.",
    ]
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "verdicts": verdicts,
        "tables": [
            {"title": f"Summary ({size:,} examples, medians over repeats)",
             "columns": ["format", "seconds", "examples/s", "output MiB", "MiB/s", "peak RSS MiB", "time / baseline",
                         "process CPU s", "CPU / baseline"],
             "rows": table},
            {"title": "Every run", "columns": ["repeat", "format", "seconds", "process CPU s", "peak RSS MiB"],
             "rows": every},
        ],
        "notes": notes,
        "data": {"examples": size, "summary": summary, "runs": rows, "idle_peak_rss_mib": idle_rss,
                 "idle_seconds": idle_s},
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "baseline":
        baseline(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python -m bench.export_bench baseline DATABASE_URL OUT")
