"""Run the benchmarks (``make bench``): print their tables, store JSON results and regenerate docs/benchmarks.md.

    python -m bench.run                  # all benchmarks, full sizes
    python -m bench.run --only list      # one of them (repeatable: --only import --only list)
    python -m bench.run --quick          # tiny sizes for a smoke run; output under .data/bench/quick/

Exit status: 0 when every target was met, 1 when a target was missed, 2 when a benchmark could not run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from typing import Any

from rich.console import Console

from bench import common, import_bench, list_bench, report

# Benchmarks of later parts, each in its own module; one that cannot be imported (its app or the embedding model is
# missing) is reported and left out. Review workspace (issue 3), dataset exports and the insights dashboard (issue 6),
# the recall core and API (issue 4), the triage queue (issue 5).
OPTIONAL = ["review_bench", "export_bench", "dashboard_bench", "recall_bench", "recall_api_bench", "triage_bench",
            "recall_throughput_bench", "ingest_bench", "queues_bench", "load_test"]


def _benchmarks() -> dict[str, Any]:
    modules = [import_bench, list_bench]
    for name in OPTIONAL:
        try:
            modules.append(importlib.import_module(f"bench.{name}"))
        except ImportError as exc:
            print(f"{name.removesuffix('_bench')} benchmark unavailable: {exc}", file=sys.stderr)
    return {module.NAME: module for module in modules}


BENCHMARKS = _benchmarks()


def _description(module: Any) -> str:
    """The module docstring minus its summary (first paragraph), paragraphs unwrapped for Markdown."""
    doc = (module.__doc__ or "").strip().split("\n\n", 1)
    body = doc[1] if len(doc) > 1 else ""
    paragraphs = [" ".join(p.split()) for p in body.strip().split("\n\n") if p.strip()]
    out = []
    for p in paragraphs:
        # Keep numbered steps on lines of their own.
        out.append(p.replace(" 1. ", "\n\n1. ").replace(" 2. ", "\n2. ").replace(" 3. ", "\n3. "))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--repeats", type=int, default=None, help="repeats/rounds per measurement (default 2)")
    args = parser.parse_args(argv)

    ctx = common.Context(quick=args.quick)
    if args.repeats is not None:
        ctx.repeats = max(1, args.repeats)
    if args.quick:
        ctx.results_dir = common.WORK_DIR / "quick" / "results"
        docs_path = common.WORK_DIR / "quick" / "benchmarks.md"
        ctx.work_dir = common.WORK_DIR / "quick"
    else:
        docs_path = common.DOCS_PATH
    names = args.only or list(BENCHMARKS)
    console = Console()
    machine = common.machine_details(common.database_url(quick=args.quick))
    status = 0
    started = time.perf_counter()
    for name in names:
        module = BENCHMARKS[name]
        console.rule(f"[bold]{module.TITLE}")
        t0 = time.perf_counter()
        try:
            result = module.run(ctx)
        except Exception:  # noqa: BLE001 (report, keep the other benchmarks' results)
            traceback.print_exc()
            console.print(f"[bold red]benchmark {name} failed; its previous result is kept[/]")
            status = max(status, 2)
            continue
        result["machine"] = {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
        result["seconds"] = round(time.perf_counter() - t0, 1)
        result["description"] = _description(module)
        report.console_tables(result, console)
        path = common.write_result(ctx.results_dir, name, result)
        console.print(f"wrote {path.relative_to(common.BASE_DIR) if path.is_relative_to(common.BASE_DIR) else path}")
        if any(v["pass"] is False for v in result["verdicts"]):
            status = max(status, 1)
    results = common.read_results(ctx.results_dir)
    ordered = {name: results[name] for name in BENCHMARKS if name in results}
    path = report.write_markdown(ordered, docs_path)
    console.print(f"wrote {path} ({time.perf_counter() - started:.0f} s in all)")
    return status


if __name__ == "__main__":
    sys.exit(main())
