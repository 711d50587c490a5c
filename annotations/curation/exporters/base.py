"""The streaming interface every export format implements, and the source of rows it reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import orjson

from annotations.curation import selectors
from annotations.curation.models import Dataset, DatasetVersion
from feedbackhub.scrubbing import ScrubTally

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
    #: Replace private data with placeholders on the way out (frozen rows keep the original text).
    scrub: bool = True
    #: The placeholders put in so far, by kind.
    tally: ScrubTally = field(default_factory=ScrubTally, compare=False)

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
        records = selectors.example_records(dataset=self.dataset, version=self.version, chunk_size=self.chunk_size)
        if not self.scrub:
            return records
        return (scrub_record(record, self.tally) for record in records)

    def annotation_count(self) -> int:
        return selectors.annotation_count(dataset=self.dataset, version=self.version)

    def annotations(self) -> Iterator[selectors.AnnotationRecord]:
        records = selectors.annotation_records(dataset=self.dataset, version=self.version, chunk_size=self.chunk_size)
        if not self.scrub:
            return records
        scrub = self.tally.scrub
        return (
            record._replace(body=scrub(record.body), exact=scrub(record.exact), prefix=scrub(record.prefix),
                            suffix=scrub(record.suffix), replacement=scrub(record.replacement))
            for record in records
        )

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


def _scrub_json(value: Any, tally: ScrubTally) -> Any:
    """Every string in a JSON value scrubbed (tool arguments and results, document fields); keys stay."""
    if isinstance(value, str):
        return tally.scrub(value)
    if isinstance(value, list):
        return [_scrub_json(v, tally) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_json(v, tally) for k, v in value.items()}
    return value


def scrub_record(record: selectors.ExampleRecord, tally: ScrubTally) -> selectors.ExampleRecord:
    """``record`` with every text an export writes passed through the scrubber; ids and metadata stay."""
    return record._replace(
        system_prompt=tally.scrub(record.system_prompt),
        messages=_scrub_json(record.messages, tally),
        original=tally.scrub(record.original),
        corrected=tally.scrub(record.corrected),
        rationale=tally.scrub(record.rationale),
        retrieved_documents=_scrub_json(record.retrieved_documents or [], tally),
        tool_calls=_scrub_json(record.tool_calls or [], tally),
    )


# --- context: how the chat formats write what the reply depended on ---------------------------------------------------

DOCUMENTS_HEADING = "Retrieved documents:"


def documents_section(documents: list[dict[str, Any]]) -> str:
    """The retrieved documents as the system message's last section::

        Retrieved documents:
        [1] Leave policy (id hr-7, score 0.83)
        Unused days carry over until March.
    """
    if not documents:
        return ""
    parts = [DOCUMENTS_HEADING]
    for n, doc in enumerate(documents, 1):
        about = ", ".join(
            f"{key} {doc[key]}" for key in ("id", "score") if doc.get(key) is not None and doc.get(key) != ""
        )
        title = str(doc.get("title") or "").strip() or "Untitled"
        parts.append(f"[{n}] {title}" + (f" ({about})" if about else "") + f"\n{doc.get('text') or ''}".rstrip())
    return "\n\n".join(parts)


def system_text(record: selectors.ExampleRecord) -> str:
    """The system prompt followed by the retrieved documents section, when there are documents."""
    return "\n\n".join(p for p in (record.system_prompt, documents_section(record.retrieved_documents or [])) if p)


def _arguments(value: Any) -> str:
    """OpenAI's ``function.arguments``: a JSON string (kept as is when it already is one)."""
    if isinstance(value, str):
        return value
    return orjson.dumps({} if value is None else value).decode()


def tool_result(value: Any) -> str:
    """A tool call's result as the ``tool`` message's content (JSON text when it is not a string)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _call_id(call: dict[str, Any], fallback: str) -> str:
    return str(call.get("id") or fallback)


def openai_tool_calls(calls: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Tool calls ``{id, name, arguments}`` in OpenAI's format; calls without an id get ``{prefix}_{n}``."""
    return [
        {"id": _call_id(call, f"{prefix}_{n}"), "type": "function",
         "function": {"name": str(call.get("name") or ""), "arguments": _arguments(call.get("arguments"))}}
        for n, call in enumerate(calls)
    ]


def _history(record: selectors.ExampleRecord) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    called: set[str] = set()  # a tool message is valid only after the assistant message that made its call
    for i, message in enumerate(record.messages):
        role = message.get("role")
        if role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            if call_id in called:
                out.append({"role": "tool", "tool_call_id": call_id, "content": message.get("content", "")})
        elif role in ("system", "user", "assistant"):
            entry: dict[str, Any] = {"role": role, "content": message.get("content", "")}
            calls = message.get("tool_calls") or []
            if role == "assistant" and calls:
                entry["content"] = entry["content"] or None
                entry["tool_calls"] = openai_tool_calls(calls, f"call_m{i}")
                called.update(c["id"] for c in entry["tool_calls"])
                out.append(entry)
                # A call whose result came with it (native logs) and has no tool message of its own gets one.
                later = {str(m.get("tool_call_id")) for m in record.messages[i + 1 :] if m.get("role") == "tool"}
                for call, oa in zip(calls, entry["tool_calls"], strict=True):
                    if oa["id"] not in later and "result" in call:
                        out.append({"role": "tool", "tool_call_id": oa["id"], "content": tool_result(call["result"])})
                continue
            out.append(entry)
    return out


def reply_tool_messages(record: selectors.ExampleRecord) -> list[dict[str, Any]]:
    """The reply's own tool calls as an assistant message with ``tool_calls`` and one ``tool`` message per result,
    in order; [] when the reply made none."""
    calls = record.tool_calls or []
    if not calls:
        return []
    openai_calls = openai_tool_calls(calls, f"call_{record.id}")
    out: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": openai_calls}]
    for call, oa in zip(calls, openai_calls, strict=True):
        out.append({"role": "tool", "tool_call_id": oa["id"], "content": tool_result(call.get("result"))})
    return out


def chat_messages(record: selectors.ExampleRecord) -> list[dict[str, Any]]:
    """Everything before the final reply, as OpenAI chat messages: the system message (system prompt and retrieved
    documents), the conversation (assistant ``tool_calls`` and ``tool`` results included), then the reply's own
    tool calls and their results."""
    system = system_text(record)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    return messages + _history(record) + reply_tool_messages(record)


def message_text(message: dict[str, Any]) -> str:
    """A chat message as plain text for the text formats: a tool call as ``name(arguments)``."""
    calls = message.get("tool_calls") or []
    text = message.get("content") or ""
    if calls:
        called = "; ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in calls)
        text = (text + "\n" if text else "") + f"[tool call] {called}"
    return text
