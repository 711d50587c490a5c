"""A Hugging Face ``datasets`` folder: ``data/train.jsonl`` (one example per line) and a ``README.md`` dataset card
whose YAML front matter declares the config, the features and the counts, so ``datasets.load_dataset(folder)``
loads it as is. The browser gets the folder as a zip; the command line writes the folder (or a zip for ``*.zip``).

``data/train.jsonl`` is the canonical form of a dataset version: its sha256 is the one a version stores, and every
byte of it (and of the card and the zip) depends only on the rows, so a version's export is reproducible.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from annotations.curation.exporters.base import (
    FLUSH_BYTES,
    ExportSource,
    Progress,
    batched_lines,
    dumps_line,
    openai_tool_calls,
    tool_result,
)
from annotations.curation.selectors import METADATA_KEYS, ExampleRecord

DATA_FILE = "data/train.jsonl"
CARD_FILE = "README.md"
_INT_METADATA = {"conversation_id", "turn_id"}
# Zip entries carry a timestamp; a fixed one keeps the archive's bytes a function of its content.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def canonical_row(record: ExampleRecord) -> dict:
    """The example as a plain dict with a fixed key order and a fixed set of metadata keys."""
    meta = record.metadata or {}
    row = {
        "id": record.id,
        "system_prompt": record.system_prompt,
        "messages": [{"role": m.get("role", ""), "content": m.get("content", "")} for m in record.messages],
        "original": record.original,
        "corrected": record.corrected,
        "rationale": record.rationale,
        "tags": list(record.tags),
        "metadata": {
            key: (meta.get(key) if key in _INT_METADATA else str(meta.get(key) or "")) for key in METADATA_KEYS
        },
    }
    # Only rows with context carry these columns, so rows snapshotted without it keep their bytes (and a version
    # its sha256); ``datasets`` fills the missing ones with null from the card's features.
    if record.retrieved_documents:
        row["retrieved_documents"] = [
            {"id": str(d.get("id") or ""), "score": _score(d.get("score")), "title": str(d.get("title") or ""),
             "text": str(d.get("text") or "")}
            for d in record.retrieved_documents
        ]
    if (record.metadata or {}).get("scores"):
        # Reviewers' rubric scores of the reply (review queues), as JSON text: field key -> gold and per reviewer.
        row["rubric_scores"] = json.dumps(record.metadata["scores"], ensure_ascii=False, sort_keys=True)
    if record.tool_calls:
        calls = openai_tool_calls(record.tool_calls, f"call_{record.id}")
        row["tool_calls"] = [
            {"id": oa["id"], "name": oa["function"]["name"], "arguments": oa["function"]["arguments"],
             "result": tool_result(call.get("result"))}
            for call, oa in zip(record.tool_calls, calls, strict=True)
        ]
    return row


def _score(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def render(record: ExampleRecord) -> bytes:
    return dumps_line(canonical_row(record))


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def _feature(name: str, dtype: str) -> str:
    return f"  - name: {name}\n    dtype: {dtype}\n"


def dataset_card(source: ExportSource, *, count: int, sha256: str) -> str:
    dataset, version = source.dataset, source.version
    name = dataset.name if dataset is not None else "All FeedbackHub datasets"
    # JSON strings are valid YAML scalars: names and notes cannot break the front matter.
    q = json.dumps
    metadata_fields = "".join(
        f"    - name: {key}\n      dtype: {'int64' if key in _INT_METADATA else 'string'}\n" for key in METADATA_KEYS
    )
    front = (
        "---\n"
        f"pretty_name: {q(name)}\n"
        "license: other  # placeholder: set the licence under which this data may be used\n"
        "task_categories:\n- text-generation\n"
        "tags:\n- feedbackhub\n- sft\n- dpo\n- corrections\n"
        f"size_categories:\n- {_size_category(count)}\n"
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n"
        f"    path: {DATA_FILE}\n"
        "dataset_info:\n  features:\n"
        + _feature("id", "int64")
        + _feature("system_prompt", "string")
        + "  - name: messages\n    list:\n"
        + "    - name: role\n      dtype: string\n    - name: content\n      dtype: string\n"
        + _feature("original", "string")
        + _feature("corrected", "string")
        + _feature("rationale", "string")
        + "  - name: tags\n    sequence: string\n"
        + "  - name: metadata\n    struct:\n"
        + metadata_fields
        + "  - name: retrieved_documents\n    list:\n"
        + "    - name: id\n      dtype: string\n    - name: score\n      dtype: float64\n"
        + "    - name: title\n      dtype: string\n    - name: text\n      dtype: string\n"
        + "  - name: tool_calls\n    list:\n"
        + "    - name: id\n      dtype: string\n    - name: name\n      dtype: string\n"
        + "    - name: arguments\n      dtype: string\n    - name: result\n      dtype: string\n"
        + _feature("rubric_scores", "string")
        + f"  splits:\n  - name: train\n    num_examples: {count}\n"
        "---\n\n"
    )
    lines = [f"# {name}", ""]
    if dataset is not None and dataset.description:
        lines += [dataset.description, ""]
    lines += [
        "Corrected assistant replies curated in FeedbackHub: each example is a reply a model gave (`original`), the",
        "reply a domain expert approved instead (`corrected`), why (`rationale`), the review tags, and the context it",
        "was given: the system prompt, the conversation before the reply (`messages`), the documents retrieved for it",
        "(`retrieved_documents`) and the tool calls it made with their results (`tool_calls`, arguments as JSON).",
        "Private data (e-mail addresses, phone and card numbers, IBANs) is replaced by placeholders such as `[EMAIL]`.",
        "",
        "| | |",
        "|---|---|",
        f"| Source | FeedbackHub {source.base_url.rstrip('/')}"
        + (f"/curation/d/{dataset.slug}/" if dataset is not None else "/curation/") + " |",
        f"| Version | {version.number if version is not None else 'live (approved examples at export time)'} |",
    ]
    if version is not None:
        lines.append(f"| Cut | {version.created_at.isoformat(timespec='seconds')} |")
        if version.note:
            lines.append(f"| Note | {' '.join(version.note.split())} |")
    lines += [
        f"| Examples | {count} |",
        f"| sha256 of `{DATA_FILE}` | `{sha256}` |",
        "| Licence | to be set by the dataset owner (placeholder `other`) |",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("path/to/this/folder")["train"]',
        "```",
        "",
    ]
    return front + "\n".join(lines)


class _Files:
    """The folder's files in order; the card is rendered after the rows, from their count and hash."""

    def __init__(self, source: ExportSource, progress: Progress | None) -> None:
        self.source = source
        self.progress = progress
        self.count = 0
        self.digest = hashlib.sha256()

    def _rows(self) -> Iterator[bytes]:
        def counting(n: int) -> None:
            self.count = n
            if self.progress is not None:
                self.progress(n)

        for chunk in batched_lines(self.source.examples(), render, progress=counting):
            self.digest.update(chunk)
            yield chunk

    def _card(self) -> Iterator[bytes]:
        yield dataset_card(self.source, count=self.count, sha256=self.digest.hexdigest()).encode("utf-8")

    def __iter__(self) -> Iterator[tuple[str, Callable[[], Iterator[bytes]]]]:
        yield DATA_FILE, self._rows
        yield CARD_FILE, self._card


class _Sink:
    """A write-only stream that collects what zipfile writes until it is taken (zipfile copes with no seek/tell)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


class HFExporter:
    format = "hf"
    extension = ".zip"
    content_type = "application/zip"

    def count(self, source: ExportSource) -> int:
        return source.example_count()

    def chunks(self, source: ExportSource, *, progress: Progress | None = None) -> Iterator[bytes]:
        """The folder as a zip archive, streamed."""
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
            for name, pieces in _Files(source, progress):
                info = zipfile.ZipInfo(f"{source.label}/{name}", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as member:
                    for piece in pieces():
                        member.write(piece)
                        if sink.size >= FLUSH_BYTES:
                            yield sink.take()
        yield sink.take()

    def write_folder(self, source: ExportSource, folder: Path, *, progress: Progress | None = None) -> int:
        """Write the folder itself (``data/train.jsonl`` and ``README.md`` under ``folder``); bytes written."""
        size = 0
        for name, pieces in _Files(source, progress):
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                for piece in pieces():
                    out.write(piece)
                    size += len(piece)
        return size


EXPORTER = HFExporter()
