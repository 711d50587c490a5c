"""The raw-COPY baseline's input: the exact rows the import pipeline stores, written once as COPY text files.

Rows come from the importer's own normaliser (``sessions.importers.native`` over ``sessions.importers.reader``),
so the baseline loads the same conversations, turns and feedback events, column for column, as the pipeline.
What the baseline leaves out is precisely the pipeline's own work: parsing and validating, staging, the merge
(idempotency: matching existing rows, updating changed ones, deleting surplus turns) and the text-search vector
(``search_vector`` stays NULL here, while the pipeline computes it in SQL).

Ids are assigned here (the tables are emptied with RESTART IDENTITY before a baseline run), so turns and feedback
reference their parents without a lookup. Preparing the files is not timed; only the COPY is.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

COPY_ROWS_VERSION = 1
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _field(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return str(value)


def _line(values: tuple | list) -> str:
    return "\t".join([_field(v) for v in values]) + "\n"


def prepare(jsonl: Path, out_dir: Path, *, source: str = "bench") -> dict[str, Any]:
    """Write conversation/turn/feedback COPY files for ``jsonl`` into ``out_dir`` (reused when up to date).

    Precondition: Django is set up (the normaliser reads the models' choices). Returns the manifest.
    """
    from django.conf import settings  # noqa: PLC0415

    from sessions.importers import native  # noqa: PLC0415
    from sessions.importers.normalise import (  # noqa: PLC0415
        CONVERSATION_COLUMNS,
        FEEDBACK_COLUMNS,
        NORMALISE_VERSION,
        TURN_COLUMNS,
        Conversation,
    )
    from sessions.importers.reader import ImportFile  # noqa: PLC0415
    from sessions.models import Conversation as ConversationModel  # noqa: PLC0415
    from sessions.models import FeedbackEvent, Turn  # noqa: PLC0415

    stamp = {
        "source_file": jsonl.name,
        "source_bytes": jsonl.stat().st_size,
        "normalise_version": NORMALISE_VERSION,
        "copy_rows_version": COPY_ROWS_VERSION,
        "columns": [CONVERSATION_COLUMNS, TURN_COLUMNS, FEEDBACK_COLUMNS],
    }
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("stamp") == json.loads(json.dumps(stamp)):
            return manifest
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)

    assert CONVERSATION_COLUMNS[-1] == "search_text", "the normaliser's conversation columns changed"
    assert FEEDBACK_COLUMNS[0] == "position", "the normaliser's feedback columns changed"
    now = dt.datetime.now(dt.UTC).isoformat()
    conv_columns = ["id", *CONVERSATION_COLUMNS[:-1], "imported_at", "updated_at"]
    turn_columns = ["id", "conversation_id", *TURN_COLUMNS]
    feedback_columns = ["conversation_id", "turn_id", *FEEDBACK_COLUMNS[1:]]
    conv_id = turn_id = feedback_rows = rejected = 0
    with (
        ImportFile(jsonl, max_file_bytes=settings.IMPORT_MAX_FILE_BYTES,
                   max_line_bytes=settings.IMPORT_MAX_LINE_BYTES) as f,
        open(out_dir / "conversation.copy", "w", encoding="utf-8", buffering=1 << 20) as conv_out,
        open(out_dir / "turn.copy", "w", encoding="utf-8", buffering=1 << 20) as turn_out,
        open(out_dir / "feedback.copy", "w", encoding="utf-8", buffering=1 << 20) as fb_out,
    ):
        for item in native.iter_items(f, default_source=source):
            if not isinstance(item, Conversation):
                rejected += 1
                continue
            conv_id += 1
            conv_out.write(_line((conv_id, *item.row[:-1], now, now)))
            first_turn = turn_id + 1
            for turn in item.turns:
                turn_id += 1
                turn_out.write(_line((turn_id, conv_id, *turn)))
            for event in item.feedback:
                feedback_rows += 1
                fb_out.write(_line((conv_id, first_turn + event[0], *event[1:])))
    manifest = {
        "stamp": stamp,
        "rejected": rejected,
        "tables": [
            {"table": ConversationModel._meta.db_table, "columns": conv_columns, "file": "conversation.copy",
             "rows": conv_id, "max_id": conv_id},
            {"table": Turn._meta.db_table, "columns": turn_columns, "file": "turn.copy",
             "rows": turn_id, "max_id": turn_id},
            {"table": FeedbackEvent._meta.db_table, "columns": feedback_columns, "file": "feedback.copy",
             "rows": feedback_rows, "max_id": None},
        ],
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str]) -> int:
    """``python -m bench.copy_rows FILE.jsonl OUT_DIR`` (with DATABASE_URL set as for an import)."""
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    if len(argv) != 3:
        print("usage: python -m bench.copy_rows FILE.jsonl OUT_DIR", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackhub.settings")
    import django  # noqa: PLC0415

    django.setup()
    manifest = prepare(Path(argv[1]), Path(argv[2]))
    if manifest["rejected"]:
        print(f"{manifest['rejected']} records of {argv[1]} were rejected by the normaliser", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv))
