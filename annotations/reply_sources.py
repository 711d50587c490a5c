"""Named sets of assistant replies that review queues can be built from, besides the conversation list's filters.
A feature app registers its own from ``AppConfig.ready()`` (triage offers its clusters), so the queues app needs
no import of it.

A source gives ``choices()`` (value, label) to pick from and ``turns_sql(value)``: a ``SELECT turn_id,
conversation_id`` statement with its parameters, selecting the replies the value stands for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReplySource:
    key: str
    label: str
    choices: Callable[[], list[tuple[str, str]]]
    turns_sql: Callable[[str], tuple[str, list[Any]]]


SOURCES: dict[str, ReplySource] = {}


def register(source: ReplySource) -> None:
    SOURCES[source.key] = source
