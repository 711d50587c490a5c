"""CSV for spreadsheets: UTF-8 with a byte-order mark (Excel reads it as UTF-8), one row per example, and every cell
that a spreadsheet would take for a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return)
prefixed with a single quote, as OWASP's CSV-injection advice says."""

from __future__ import annotations

import csv as _csv
import io
import json
from collections.abc import Iterator

from annotations.curation.exporters.base import (
    ExportSource,
    Progress,
    batched_lines,
    chat_messages,
    message_text,
    system_text,
)

BOM = "\ufeff".encode()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "example_id", "source", "external_id", "conversation_id", "turn_id", "model_version", "environment",
    "system_prompt", "context", "original", "corrected", "rationale", "tags", "rubric_scores",
)


def escape(value: object) -> str:
    """The cell text, with a leading single quote when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def rubric_scores_text(scores: dict | None) -> str:
    """A reply's rubric scores as compact JSON (field key -> name, version, gold value, each reviewer's), or ""."""
    return json.dumps(scores, ensure_ascii=False, sort_keys=True, separators=(",", ":")) if scores else ""


def _row(record) -> list[str]:
    meta = record.metadata or {}
    history = "\n\n".join(f"{m['role']}: {message_text(m)}" for m in chat_messages(record) if m["role"] != "system")
    values = [
        record.id, meta.get("source", ""), meta.get("external_id", ""), meta.get("conversation_id", ""),
        meta.get("turn_id", ""), meta.get("model_version", ""), meta.get("environment", ""),
        system_text(record), history, record.original, record.corrected, record.rationale, "; ".join(record.tags),
        rubric_scores_text(meta.get("scores")),
    ]
    return [escape(v) for v in values]


class _Renderer:
    """csv.writer over one reused buffer: each call renders one row to bytes."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.writer = _csv.writer(self.buffer, lineterminator="\r\n")

    def __call__(self, cells: list[str]) -> bytes:
        self.buffer.seek(0)
        self.buffer.truncate()
        self.writer.writerow(cells)
        return self.buffer.getvalue().encode("utf-8")


class CSVExporter:
    format = "csv"
    extension = ".csv"
    content_type = "text/csv; charset=utf-8"

    def count(self, source: ExportSource) -> int:
        return source.example_count()

    def chunks(self, source: ExportSource, *, progress: Progress | None = None) -> Iterator[bytes]:
        render = _Renderer()
        yield BOM + render(list(COLUMNS))
        yield from batched_lines(source.examples(), lambda record: render(_row(record)), progress=progress)


EXPORTER = CSVExporter()
