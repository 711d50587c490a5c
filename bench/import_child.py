"""One measured import step, run in its own process so the parent can read that process's peak memory.

``python -m bench.import_child MODE PATH OUT_JSON`` with ``DATABASE_URL`` naming the database to import into:

* ``idle``      set Django up and connect, nothing else: the baseline memory of any import process;
* ``pipeline``  ``sessions.services.import_file(path=PATH, source="bench", format="native")``: the real import;
* ``copy``      raw ``COPY`` of the prepared row files under the folder PATH into the same tables, one transaction:
  the floor any pipeline writing those rows could reach.

The step's wall time (``seconds``), its own peak RSS (``vm_hwm_kib``, read from /proc) and what it stored are
written to OUT_JSON as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SOURCE = "bench"
COPY_BLOCK = 1 << 20


def _vm_hwm_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _counts() -> dict[str, int]:
    from sessions.models import Conversation, FeedbackEvent, Turn  # noqa: PLC0415

    return {
        "conversations": Conversation.objects.count(),
        "turns": Turn.objects.count(),
        "feedback": FeedbackEvent.objects.count(),
    }


def run_idle(_path: Path) -> dict[str, Any]:
    from django.db import connection  # noqa: PLC0415

    started = time.perf_counter()
    connection.ensure_connection()
    return {"seconds": time.perf_counter() - started}


def run_pipeline(path: Path) -> dict[str, Any]:
    from bench import import_timing  # noqa: PLC0415
    from sessions import services  # noqa: PLC0415

    with import_timing.timed() as timings:
        started = time.perf_counter()
        batch = services.import_file(path=path, source=SOURCE, format="native")
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        # Wall seconds per merge step and each thread's CPU seconds (bench.import_timing).
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "status": batch.status,
        "error": batch.error,
        "batch": {
            "records_read": batch.records_read,
            "created": batch.conversations_created,
            "updated": batch.conversations_updated,
            "unchanged": batch.conversations_unchanged,
            "rejected": batch.records_rejected,
            "turns_written": batch.turns_written,
            "feedback_written": batch.feedback_written,
        },
    }


def run_copy(folder: Path) -> dict[str, Any]:
    """COPY the prepared files (see bench.copy_rows) into their tables in one transaction."""
    from django.db import connection, transaction  # noqa: PLC0415

    manifest = json.loads((folder / "manifest.json").read_text())
    connection.ensure_connection()
    started = time.perf_counter()
    with transaction.atomic():
        raw = connection.connection
        with raw.cursor() as cursor:
            for part in manifest["tables"]:
                columns = ", ".join(f'"{c}"' for c in part["columns"])
                with (
                    open(folder / part["file"], "rb") as fh,
                    cursor.copy(f'COPY "{part["table"]}" ({columns}) FROM STDIN') as copy,
                ):
                    while block := fh.read(COPY_BLOCK):
                        copy.write(block)
            for part in manifest["tables"]:
                if part.get("max_id"):
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence('\"{part['table']}\"', 'id'), %s)", [part["max_id"]]
                    )
    return {"seconds": time.perf_counter() - started}


MODES = {"idle": run_idle, "pipeline": run_pipeline, "copy": run_copy}


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in MODES:
        print(f"usage: python -m bench.import_child {'|'.join(MODES)} PATH OUT_JSON", file=sys.stderr)
        return 2
    mode, path, out = argv[1], Path(argv[2]), Path(argv[3])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackhub.settings")
    import django  # noqa: PLC0415

    django.setup()
    result = MODES[mode](path)
    result["stored"] = _counts()
    result["vm_hwm_kib"] = _vm_hwm_kib()
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
