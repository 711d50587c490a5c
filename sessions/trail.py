"""Reads of one conversation's trail: its metadata, then each turn with its system context (retrieved documents and
tool calls, shown whatever shape the source logged them in), its output and its end-user feedback."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import F
from django.http import Http404

from sessions.models import Conversation, FeedbackEvent, Turn


def pretty(value: Any) -> str:
    """Text for showing a JSON value: strings as they are (JSON inside a string pretty-printed), the rest as
    indented JSON. The result is plain text; templates escape it."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
            except ValueError:
                return value
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class DocumentView:
    id: str
    title: str
    score: float | None
    text: str
    #: Other keys of the stored document, pretty-printed.
    extra: str


@dataclass(frozen=True)
class ToolCallView:
    name: str
    id: str
    arguments: str
    result: str
    has_result: bool
    extra: str


_DOC_KEYS = ("id", "title", "score", "text")
_TOOL_KEYS = ("id", "name", "arguments", "result")


def _documents(raw: Any) -> list[DocumentView]:
    if not isinstance(raw, list):
        return []
    docs = []
    for doc in raw:
        if not isinstance(doc, dict):
            doc = {"text": doc}
        score = doc.get("score")
        rest = {k: v for k, v in doc.items() if k not in _DOC_KEYS}
        docs.append(
            DocumentView(
                id="" if doc.get("id") is None else str(doc["id"]),
                title="" if doc.get("title") is None else str(doc["title"]),
                score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
                text=pretty(doc.get("text", "")),
                extra=pretty(rest) if rest else "",
            )
        )
    return docs


def _tool_calls(raw: Any) -> list[ToolCallView]:
    if not isinstance(raw, list):
        return []
    calls = []
    for call in raw:
        if not isinstance(call, dict):
            call = {"name": str(call)}
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = call.get("arguments", function.get("arguments"))
        rest = {k: v for k, v in call.items() if k not in (*_TOOL_KEYS, "function")}
        calls.append(
            ToolCallView(
                name=str(call.get("name") or function.get("name") or "(unnamed tool)"),
                id="" if call.get("id") is None else str(call["id"]),
                arguments="" if arguments is None else pretty(arguments),
                result="" if call.get("result") is None else pretty(call["result"]),
                has_result="result" in call,
                extra=pretty(rest) if rest else "",
            )
        )
    return calls


@dataclass
class Trail:
    conversation: Conversation
    turns: list[Turn]
    feedback_count: int = 0

    @property
    def metadata_items(self) -> list[tuple[str, str, bool]]:
        """(key, text, is_structured) for each top-level metadata key, sorted by key."""
        metadata = self.conversation.metadata
        if not isinstance(metadata, dict):
            return [("(value)", pretty(metadata), True)] if metadata else []
        return [(str(k), pretty(v), not isinstance(v, str)) for k, v in sorted(metadata.items(), key=lambda i: i[0])]


def conversation_trail(*, pk: int) -> Trail:
    """A conversation with its turns in order; three queries. Each turn gets ``feedback`` (its events, oldest
    first), ``documents`` and ``tools`` (its system context, ready to show).

    Raises Http404 when there is no such conversation.
    """
    conversation = Conversation.objects.select_related("last_import").defer("search_vector").filter(pk=pk).first()
    if conversation is None:
        raise Http404("No such conversation.")
    turns = list(Turn.objects.filter(conversation_id=pk).order_by("position"))
    by_turn: dict[int, list[FeedbackEvent]] = defaultdict(list)
    events = FeedbackEvent.objects.filter(conversation_id=pk).order_by(F("created_at").asc(nulls_last=True), "id")
    count = 0
    for event in events:
        event.metadata_text = pretty(event.metadata) if event.metadata else ""  # type: ignore[attr-defined]
        by_turn[event.turn_id].append(event)
        count += 1
    for turn in turns:
        turn.feedback = by_turn.get(turn.pk, [])  # type: ignore[attr-defined]
        turn.documents = _documents(turn.retrieved_documents)  # type: ignore[attr-defined]
        turn.tools = _tool_calls(turn.tool_calls)  # type: ignore[attr-defined]
        turn.metadata_text = pretty(turn.metadata) if turn.metadata else ""  # type: ignore[attr-defined]
    return Trail(conversation=conversation, turns=turns, feedback_count=count)
