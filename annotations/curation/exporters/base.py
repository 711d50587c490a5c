"""The streaming interface every export format implements, and the source of rows it reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from annotations.curation import selectors
from annotations.curation.models import Dataset, DatasetVersion

Progress = Callable[[int], None]
#: Output is handed on in pieces of about this size (bytes).
FLUSH_BYTES = 256 * 1024


@dataclass(frozen=True)
class ExportSource:
    """What to export: the approved examples of ``dataset`` (every dataset when None), or the frozen rows of
    ``version``. ``base_url`` makes the links in W3C targets and dataset cards absolute."""

    dataset: Dataset | None = None
    version: DatasetVersion | None = None
    base_url: str = "http://localhost:8000"
    chunk_size: int = selectors.EXPORT_CHUNK_SIZE

    def __post_init__(self) -> None:
        if self.version is not None and self.dataset is not None and self.version.dataset_id != self.dataset.pk:
            raise ValueError(f"Version {self.version.number} does not belong to dataset {self.dataset.name!r}.")
        if self.version is not None and self.dataset is None:
            object.__setattr__(self, "dataset", self.version.dataset)

    @property
    def label(self) -> str:
        name = self.dataset.slug if self.dataset is not None else "all-datasets"
        return f"{name}-v{self.version.number}" if self.version is not None else name

    def example_count(self) -> int:
        return selectors.example_count(dataset=self.dataset, version=self.version)

    def examples(self) -> Iterator[selectors.ExampleRecord]:
        return selectors.example_records(dataset=self.dataset, version=self.version, chunk_size=self.chunk_size)

    def annotation_count(self) -> int:
        return selectors.annotation_count(dataset=self.dataset, version=self.version)

    def annotations(self) -> Iterator[selectors.AnnotationRecord]:
        return selectors.annotation_records(dataset=self.dataset, version=self.version, chunk_size=self.chunk_size)

    def turn_url(self, conversation_id: int, turn_id: int) -> str:
        return f"{self.base_url.rstrip('/')}/review/c/{conversation_id}/#turn-{turn_id}"


class Exporter(Protocol):
    format: str
    extension: str  # of the downloaded file, with its dot
    content_type: str

    def count(self, source: ExportSource) -> int:
        """How many records ``chunks`` will report through ``progress`` (examples, or annotations for w3c)."""
        ...

    def chunks(self, source: ExportSource, *, progress: Progress | None = None) -> Iterator[bytes]:
        """The export as bytes pieces; ``progress(n)`` is called with the records written so far."""
        ...


def write(exporter: Exporter, source: ExportSource, out: IO[bytes], *, progress: Progress | None = None) -> int:
    """Write the export to the binary file-like ``out``; the number of bytes written."""
    size = 0
    for chunk in exporter.chunks(source, progress=progress):
        out.write(chunk)
        size += len(chunk)
    return size


def dumps_line(obj: object) -> bytes:
    """One JSONL line: compact, UTF-8, keys in the order the exporter built them (deterministic)."""
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def batched_lines(
    items: Iterable[Any], render: Callable[[Any], bytes], *, progress: Progress | None, every: int = 1000
) -> Iterator[bytes]:
    """Render each item and hand on the bytes in pieces of about FLUSH_BYTES, reporting progress every ``every``."""
    buffer: list[bytes] = []
    size = n = 0
    for item in items:
        line = render(item)
        buffer.append(line)
        size += len(line)
        n += 1
        if progress is not None and n % every == 0:
            progress(n)
        if size >= FLUSH_BYTES:
            yield b"".join(buffer)
            buffer.clear()
            size = 0
    if buffer:
        yield b"".join(buffer)
    if progress is not None:
        progress(n)


def chat_messages(record: selectors.ExampleRecord) -> list[dict[str, str]]:
    """The system prompt (when there is one) and the conversation before the reply, as chat messages.

    Roles other than system/user/assistant (tool results) are left out: the chat formats do not take them bare.
    """
    messages = [{"role": "system", "content": record.system_prompt}] if record.system_prompt else []
    for message in record.messages:
        role = message.get("role")
        if role in ("system", "user", "assistant"):
            messages.append({"role": role, "content": message.get("content", "")})
    return messages
