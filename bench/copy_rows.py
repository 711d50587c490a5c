"""The raw-COPY baseline's input: the exact rows the import pipeline stores, written once as COPY text files.

Rows come from the importer itself (a normalised conversation's ``row``, ``turns`` and ``feedback``, in the column
order of ``sessions.imports.merge_sql.COPY_COLUMNS``), so the baseline loads the same conversations, turns and
feedback events, column for column.
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


def _source_digest() -> str:
    """A hash of the importer modules that shape the rows, so cached files follow any change to them."""
    import hashlib  # noqa: PLC0415

    import sessions.imports as package  # noqa: PLC0415

    digest = hashlib.sha256()
    folder = Path(package.__file__).parent
    for name in ("normalise.py", "formats/native.py", "reader.py", "base.py", "merge_sql.py"):
        path = folder / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def copy_rows(conversation: Any, conversation_id: int) -> dict[str, list[tuple]]:
    """The rows the import pipeline COPYs for one normalised ``conversation``, as ``{table: rows}`` in the column
    order of ``sessions.imports.merge_sql.COPY_COLUMNS`` (the conversation row is staged with ``k`` 0)."""
    return {
        "conversation": [(0, *conversation.row)],
        "turn": [(conversation_id, *t) for t in conversation.turns],
        "feedback": [(conversation_id, *f) for f in conversation.feedback],
    }


def prepare(jsonl: Path, out_dir: Path, *, source: str = "bench") -> dict[str, Any]:
    """Write conversation/turn/feedback COPY files for ``jsonl`` into ``out_dir`` (reused when up to date).

    The rows are the importer's own (:func:`copy_rows` over the native format's items), mapped onto
    the real tables: the staging key ``k`` becomes the conversation id, ``search_text`` (which only feeds the
    pipeline's SQL) is left out, and a feedback row's ``position`` becomes its turn's id.
    Precondition: Django is set up. Returns the manifest.
    """
    from django.conf import settings  # noqa: PLC0415

    from sessions.imports.formats import native  # noqa: PLC0415
    from sessions.imports.merge_sql import COPY_COLUMNS  # noqa: PLC0415
    from sessions.imports.normalise import Conversation  # noqa: PLC0415
    from sessions.imports.reader import ImportFile  # noqa: PLC0415
    from sessions.models import Conversation as ConversationModel  # noqa: PLC0415
    from sessions.models import FeedbackEvent, Turn  # noqa: PLC0415

    columns = COPY_COLUMNS
    stamp = {
        "source_file": jsonl.name,
        "source_bytes": jsonl.stat().st_size,
        "importer_digest": _source_digest(),
        "copy_rows_version": COPY_ROWS_VERSION,
        "columns": {name: list(cols) for name, cols in columns.items()},
    }
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("stamp") == stamp:
            return manifest
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)

    conv_in = list(columns["conversation"])
    conv_keep = [i for i, name in enumerate(conv_in) if name not in ("k", "search_text")]
    turn_in = list(columns["turn"])
    fb_in = list(columns["feedback"])
    fb_position = fb_in.index("position")
    fb_conversation = fb_in.index("conversation_id")
    fb_keep = [i for i, name in enumerate(fb_in) if name not in ("position", "conversation_id")]
    now = dt.datetime.now(dt.UTC).isoformat()
    conv_columns = ["id", *(conv_in[i] for i in conv_keep), "imported_at", "updated_at"]
    turn_columns = ["id", *turn_in]
    feedback_columns = ["conversation_id", "turn_id", *(fb_in[i] for i in fb_keep)]
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
            rows = copy_rows(item, conv_id)
            for row in rows["conversation"]:
                conv_out.write(_line((conv_id, *(row[i] for i in conv_keep), now, now)))
            first_turn = turn_id + 1
            for row in rows["turn"]:
                turn_id += 1
                turn_out.write(_line((turn_id, *row)))
            for row in rows["feedback"]:
                feedback_rows += 1
                fb_out.write(_line((row[fb_conversation], first_turn + row[fb_position],
                                    *(row[i] for i in fb_keep))))
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
