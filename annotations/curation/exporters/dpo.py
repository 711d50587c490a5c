"""Preference pairs JSONL for TRL's ``DPOTrainer``: ``{"prompt", "chosen", "rejected"}`` with chosen = the corrected
reply and rejected = the original one.

Two forms, as TRL's dataset formats define them:

* ``text`` (default, "standard" format): ``prompt`` is the conversation rendered as text (the system message with
  its retrieved documents, tool calls as ``[tool call] name(arguments)`` and results as ``Tool:`` lines), ending
  with ``"Assistant:"``; ``chosen``/``rejected`` are strings.
* ``messages`` ("conversational" format): ``prompt`` is the OpenAI export's messages before the final reply
  (system message, ``tool_calls``, ``tool`` results), ``chosen``/``rejected`` are one-message lists
  ``[{"role": "assistant", "content": ...}]``; TRL applies the model's chat template.
"""

from __future__ import annotations

from collections.abc import Iterator

from annotations.curation.exporters.base import (
    ExportSource,
    Progress,
    batched_lines,
    chat_messages,
    dumps_line,
    message_text,
)

ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def prompt_text(record) -> str:
    parts = [f"{ROLE_LABELS[m['role']]}: {message_text(m)}" for m in chat_messages(record)]
    parts.append("Assistant:")
    return "\n\n".join(parts)


def render_text(record) -> bytes:
    return dumps_line({"prompt": prompt_text(record), "chosen": record.corrected, "rejected": record.original})


def render_messages(record) -> bytes:
    return dumps_line(
        {
            "prompt": chat_messages(record),
            "chosen": [{"role": "assistant", "content": record.corrected}],
            "rejected": [{"role": "assistant", "content": record.original}],
        }
    )


class DPOExporter:
    extension = ".jsonl"
    content_type = "application/jsonl; charset=utf-8"

    def __init__(self, form: str = "text") -> None:
        if form not in ("text", "messages"):
            raise ValueError(f"Unknown DPO form {form!r}; use text or messages.")
        self.form = form
        self.format = "dpo_chat" if form == "messages" else "dpo"

    def count(self, source: ExportSource) -> int:
        return source.example_count()

    def chunks(self, source: ExportSource, *, progress: Progress | None = None) -> Iterator[bytes]:
        render = render_messages if self.form == "messages" else render_text
        return batched_lines(source.examples(), render, progress=progress)


EXPORTER = DPOExporter()
MESSAGES_EXPORTER = DPOExporter("messages")
