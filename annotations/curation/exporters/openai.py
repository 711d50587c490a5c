"""OpenAI chat fine-tuning JSONL: one ``{"messages": [system, user, assistant, ..., assistant]}`` per line, the last
assistant message being the approved corrected reply. The system message ends with a "Retrieved documents:" section
when the reply was given documents; the reply's tool calls come before it as an assistant message with
``tool_calls`` and one ``tool`` message per result (``base.chat_messages``)."""

from __future__ import annotations

from collections.abc import Iterator

from annotations.curation.exporters.base import ExportSource, Progress, batched_lines, chat_messages, dumps_line


def render(record) -> bytes:
    return dumps_line({"messages": [*chat_messages(record), {"role": "assistant", "content": record.corrected}]})


class OpenAIExporter:
    format = "openai"
    extension = ".jsonl"
    content_type = "application/jsonl; charset=utf-8"

    def count(self, source: ExportSource) -> int:
        return source.example_count()

    def chunks(self, source: ExportSource, *, progress: Progress | None = None) -> Iterator[bytes]:
        return batched_lines(source.examples(), render, progress=progress)


EXPORTER = OpenAIExporter()
