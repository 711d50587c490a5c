"""Render benchmark results: rich tables on the console, and docs/benchmarks.md from every stored result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

TARGETS_INTRO = """\
Targets from the foundation issue ("Must show"): importing a generated native-JSONL file of 100k conversations
(about 1M turns) at **>= 50,000 turns/s** through the real pipeline, at least **0.3x** the rate of a raw `COPY` of
the same rows measured in the same run, with **peak memory under 500 MB** whatever the file size; and the session
list at **p95 <= 80 ms** with filters at **1M conversations**. From the review workspace issue: the review page of a
50-turn conversation with 200 annotations at **p95 <= 60 ms** server time and an annotation save at **p95 <= 30 ms**.
From the curate-and-analyse issue: exporting **100k curated examples** (OpenAI chat JSONL, DPO pairs, CSV) with
**peak memory under 300 MB**; the insights dashboard at **p95 <= 200 ms** server time at **1M turns and 100k
feedback events**, with and without filters. From the semantic recall issue: the recall API (`POST /api/v1/recall`)
at **p95 <= 50 ms** including embedding the query.
The recall core: the embedding pipeline at **>= 0.90x** the throughput of a bare `model.encode` of the same texts,
and k-NN over **1M vectors** at **recall@10 >= 0.95** against exact search, single-client **p95 <= 15 ms**, with
**>= 99%** of queries still returning 10 results under a filter matching 1% of rows. From the triage issue:
incremental clustering of **10k new items <= 2 s**, clustering **100k items from scratch <= 60 s**, the triage
queue page at **p95 <= 80 ms** with **1M feedback items**, and cluster purity / adjusted Rand index on real text."""

HOW_TO = """\
## Running them

```
make bench                          # everything, full sizes (15-20 minutes on this machine)
python -m bench.run --only import   # one benchmark (import, list or review); the others' last results stay
python -m bench.run --repeats 3     # more repeats (default 2)
python -m bench.run --quick         # tiny sizes, a smoke run; writes to .data/bench/quick/, not to this file
```

Benchmarks use their own databases on the same PostgreSQL server (`feedbackhub_bench` for the list,
`feedbackhub_bench_import` for imports; `BENCH_DATABASE_URL` overrides), never the development or test
databases. The million-conversation list data set is built once (about two minutes) and reused while the
conversation migrations stay the same. Generated import files (about 1 GB) and their COPY rows are cached under
`.data/bench/`. The exit status is 1 when a target was missed, 2 when a benchmark could not run.
Each benchmark prints its tables and writes `bench/results/<name>.json`; this page is regenerated from those
files, so it always shows the latest full run of each benchmark."""


def _mark(passed: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "n/a"}[passed]


def console_tables(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    verdicts = Table(title=f"{result['title']}: targets", title_justify="left")
    for column in ("check", "target", "measured", "result"):
        verdicts.add_column(column)
    for v in result["verdicts"]:
        style = {True: "green", False: "bold red", None: "yellow"}[v["pass"]]
        verdicts.add_row(v["name"], v["target"], v["measured"], f"[{style}]{_mark(v['pass']).strip('*')}[/]")
    for table in result["tables"]:
        out = Table(title=table["title"], title_justify="left")
        for column in table["columns"]:
            out.add_column(column, justify="left" if column in ("combination", "step") else "right")
        for row in table["rows"]:
            out.add_row(*[str(c) for c in row])
        console.print(out)
    console.print(verdicts)
    for note in result.get("notes", []):
        console.print(f"- {note}", highlight=False)


def _md_table(columns: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine_table(machine: dict[str, Any]) -> str:
    rows = [
        ["CPU", f"{machine.get('cpu_model')} ({machine.get('cpu_cores')} cores)"],
        ["RAM", f"{machine.get('ram_gib')} GiB"],
        ["OS", machine.get("os")],
        ["Python", machine.get("python")],
        ["PostgreSQL", f"{machine.get('postgresql')} ({machine.get('postgresql_settings', '')})"],
        ["Django", machine.get("django")],
    ]
    return _md_table(["", ""], rows)


def _run_line(result: dict[str, Any]) -> str:
    machine = result.get("machine") or {}
    start = machine.get("load_average_at_start") or ["?"]
    end = machine.get("load_average_at_end") or ["?"]
    took = f", took {result['seconds']:.0f} s" if result.get("seconds") else ""
    return (
        f"Run: {machine.get('date', '?')}, commit {machine.get('git_commit', '?')}{took}; "
        f"1-minute load average {start[0]} at the start, {end[0]} at the end (2 cores: above 2 means waiting for a "
        "CPU)."
    )


#: Results of the same benchmarks on the commit before the recut (the app split into one-way layers), kept to compare.
BEFORE_DIR = Path(__file__).resolve().parent / "results" / "before-recut"


def _before_after(results: dict[str, dict[str, Any]]) -> list[str]:
    """A table of each check before the recut and now, when the earlier result of that benchmark is kept."""
    rows = []
    for name, result in results.items():
        path = BEFORE_DIR / f"{name}.json"
        if not path.is_file():
            continue
        before = json.loads(path.read_text())
        # Same benchmark code, same checks in the same order (a check's wording may have changed with the names).
        for old, new in zip(before["verdicts"], result["verdicts"], strict=False):
            rows.append([result["title"], new["name"], new["target"], old["measured"], new["measured"],
                         _mark(new["pass"])])
    if not rows:
        return []
    machines = (json.loads(p.read_text()).get("machine", {}) for p in sorted(BEFORE_DIR.glob("*.json")))
    commit = next((m.get("git_commit", "") for m in machines), "")
    return [
        "## Before and after the recut", "",
        f"The same benchmarks on commit {commit} (before the apps were recut into one-way layers) and in this run.",
        "", _md_table(["benchmark", "check", "target", "before", "now", "result now"], rows), "",
    ]


def markdown(results: dict[str, dict[str, Any]]) -> str:
    parts = ["# Benchmarks", "", "Generated by `python -m bench.run` (`make bench`); do not edit by hand.", "",
             TARGETS_INTRO, ""]
    if not results:
        parts += ["No results yet: run `make bench`.", ""]
    summary_rows = []
    for result in results.values():
        for v in result["verdicts"]:
            summary_rows.append([result["title"], v["name"], v["target"], v["measured"], _mark(v["pass"])])
    if summary_rows:
        parts += ["## Summary", "", _md_table(["benchmark", "check", "target", "measured", "result"], summary_rows),
                  ""]
    parts += _before_after(results)
    latest = max((r for r in results.values() if r.get("machine")), key=lambda r: r["machine"].get("date", ""),
                 default=None)
    if latest is not None:
        parts += ["## Machine", "", _machine_table(latest["machine"]), ""]
    for result in results.values():
        parts += [f"## {result['title']}", ""]
        module_doc = result.get("description")
        if module_doc:
            parts += [module_doc, ""]
        for table in result["tables"]:
            parts += [f"**{table['title']}**", "", _md_table(table["columns"], table["rows"]), ""]
        if result.get("notes"):
            parts += [*(f"- {note}" for note in result["notes"]), ""]
        if result.get("machine"):
            parts += [_run_line(result), ""]
    parts += [
        "## Reading these numbers",
        "",
        "The machine is shared and noisy (other processes run tests against the same PostgreSQL server), so "
        "every step is repeated and the import is compared with a raw `COPY` measured in the same repeat: the "
        "ratio is steadier than either rate. The list is measured in interleaved rounds; 'round p95' shows how "
        "much one round differed from another, and 'app CPU p50' is the code's own cost per request, which load "
        "from other processes barely changes.",
        "",
        HOW_TO,
        "",
    ]
    return "\n".join(parts)


def write_markdown(results: dict[str, dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results))
    return path
