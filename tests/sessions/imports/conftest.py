"""Helpers for importer tests: each test writes its own small files."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.shared_data import SHARED_DATA

SHAREGPT_DUMMY = SHARED_DATA / "sharegpt" / "dummy_conversation.json"


def conversation(conv_id: str = "conv-1", turns: int = 2, **extra: Any) -> dict:
    """A small valid native record: alternating user/assistant turns, the assistant ones with context."""
    out: list[dict] = []
    for i in range(turns):
        if i % 2 == 0:
            out.append({"role": "user", "content": f"How do I reset my password? ({conv_id} q{i})"})
        else:
            out.append(
                {
                    "role": "assistant",
                    "content": f"Open Settings, then Security. ({conv_id} a{i})",
                    "created_at": "2026-03-01T10:00:05Z",
                    "latency_ms": 850,
                    "usage": {"prompt_tokens": 120, "completion_tokens": 40},
                    "model_version": "support-llm-2026-02",
                    "confidence": 0.8,
                    "context": {
                        "system_prompt": "You are the support assistant.",
                        "retrieved_documents": [{"id": "kb-12", "score": 0.91, "title": "Passwords", "text": "..."}],
                        "tool_calls": [{"id": "call-1", "name": "lookup_user", "arguments": {"id": 7}, "result": "ok"}],
                    },
                }
            )
    record = {
        "id": conv_id,
        "user": {"id": "u-9f2", "role": "customer"},
        "environment": "prod",
        "model_version": "support-llm-2026-02",
        "app_version": "4.2.0",
        "started_at": "2026-03-01T10:00:00Z",
        "ended_at": "2026-03-01T10:05:00Z",
        "metadata": {"locale": "en-GB"},
        "turns": out,
    }
    record.update(extra)
    return record


def jsonl(records: list[Any]) -> bytes:
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)


@pytest.fixture
def write(tmp_path: Path):
    """write(name, bytes_or_records) -> Path; a name ending in .gz is gzip-compressed."""

    def _write(name: str, content: bytes | list[Any]) -> Path:
        data = jsonl(content) if isinstance(content, list) else content
        path = tmp_path / name
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return path

    return _write
