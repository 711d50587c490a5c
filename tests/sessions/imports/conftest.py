"""Helpers for importer tests: each test writes its own small files."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.sessions.factories import NativeRecordFactory
from tests.shared_data import SHARED_DATA

SHAREGPT_DUMMY = SHARED_DATA / "sharegpt" / "dummy_conversation.json"


def conversation(conv_id: str = "conv-1", turns: int = 2, **extra: Any) -> dict:
    """A small valid native record (``NativeRecordFactory``) with id ``conv_id`` and ``turns`` turns."""
    return NativeRecordFactory(id=conv_id, turn_count=turns, **extra)


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
