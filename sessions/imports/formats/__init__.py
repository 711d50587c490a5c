"""Importers: one module per log format over one shared pipeline (:mod:`sessions.imports.pipeline`).

Each format module has ``NAME``, ``sniff(first_record) -> bool`` and
``iter_items(import_file, default_source=...) -> Iterator[Conversation | Rejected]``. They map their records onto
the native FeedbackHub shape and validate them with :func:`sessions.imports.normalise.normalise`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import orjson
from django.conf import settings

from sessions.imports.errors import FileError, RecordError
from sessions.imports.formats import csv_turns, native, openai_chat, sharegpt
from sessions.imports.reader import UTF8_BOM, ImportFile, check_bom

__all__ = ["FORMATS", "FileError", "RecordError", "detect_format"]

#: Format name (``ImportBatch.format``, ``--format``) -> module.
FORMATS: dict[str, ModuleType] = {
    native.NAME: native,
    openai_chat.NAME: openai_chat,
    sharegpt.NAME: sharegpt,
    csv_turns.NAME: csv_turns,
}


#: How many lines detection reads past broken records before it gives up.
SNIFF_LINES = 100


def _stem_suffixes(path: Path) -> list[str]:
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[:-1] if suffixes and suffixes[-1] == ".gz" else suffixes


def detect_format(path: Path) -> str:
    """Tell the format of ``path`` (``.gz`` or not) from its first record, then its extension.

    Raises :class:`FileError` with what was found when no format fits.
    """
    path = Path(path)
    with ImportFile(
        path, max_file_bytes=settings.IMPORT_MAX_FILE_BYTES, max_line_bytes=settings.IMPORT_MAX_LINE_BYTES
    ) as f:
        suffixes = _stem_suffixes(path)
        if f.is_json_array():
            for _, first_line, data in f.json_array():
                first = _loads(data)
                for name in ("sharegpt", "native", "openai"):
                    if FORMATS[name].sniff(first):
                        if name != "sharegpt":
                            raise FileError(
                                f"{f.name}: line {first_line}: a JSON array of {name} records; {name} files have one "
                                "record per line (JSONL). Only ShareGPT files may be a JSON array."
                            )
                        return name
                raise FileError(
                    f"{f.name}: line {first_line}: a JSON array whose first element is not a ShareGPT conversation "
                    '(an object with a "conversations" array)'
                )
            raise FileError(f"{f.name}: the JSON array is empty")
        for lineno, line in f.lines():
            if line is None:
                raise FileError(f"{f.name}: line {lineno}: longer than IMPORT_MAX_LINE_BYTES; cannot tell the format")
            if line.lstrip()[:1] in (b"{", b"["):
                first = _loads(line)
                if not isinstance(first, dict):
                    if lineno < SNIFF_LINES:
                        continue  # a broken first record: look at the next ones
                    raise FileError(
                        f"{f.name}: cannot tell the format: none of the first {SNIFF_LINES} lines is a JSON object"
                    )
                for name in ("native", "openai", "sharegpt"):
                    if FORMATS[name].sniff(first):
                        return name
                keys = ", ".join(sorted(first)[:10])
                raise FileError(
                    f"{f.name}: line {lineno}: cannot tell the format of this JSON record (keys: {keys}); "
                    'expected "turns" (native), "messages" (openai) or "conversations" (sharegpt)'
                )
            text = line.decode("utf-8", "replace")
            if csv_turns.sniff(text):
                return csv_turns.NAME
            if ".csv" in suffixes:
                raise FileError(
                    f"{f.name}: line {lineno}: the CSV header needs conversation_id and role columns "
                    f"(found: {text[:200]})"
                )
            raise FileError(
                f"{f.name}: line {lineno}: cannot tell the format (not a JSON record, not a CSV header); "
                "pass the format explicitly (native, openai, sharegpt or csv)"
            )
        raise FileError(f"{f.name}: the file is empty: it holds no records (nothing, or only blank lines)")


def _loads(data: bytes) -> object:
    if data.startswith(UTF8_BOM):
        data = data[3:]
    check_bom(data, "")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
