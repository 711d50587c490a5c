"""ShareGPT: a JSON array of conversations, or JSONL with one per line.

``{"id": "...", "conversations": [{"from": "human|gpt|system|tool", "value": "..."}], ...}``. Speakers ``human``/
``user`` become user turns; ``gpt``/``assistant``/``chatgpt``/``bing``/``bard``/``model`` assistant turns;
``tool``/``function_call``/``function_response``/``observation`` tool turns; ``system`` messages (and a top-level
``system`` string) become the system prompt of the assistant turns that follow. A top-level ``model`` is the model
version; other top-level keys are kept as metadata. Without an ``id`` the conversation's id is a hash of its
``conversations``. In a JSON array, the line reported for a record is the line where its element starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sessions.imports.base import Item, parse_json, rejected, too_long
from sessions.imports.errors import RecordError
from sessions.imports.formats.openai_chat import translate
from sessions.imports.normalise import content_hash, normalise, stable_id
from sessions.imports.reader import ImportFile

NAME = "sharegpt"
_SPEAKERS = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant",
    "model": "assistant",
    "tool": "tool", "function_call": "tool", "function_response": "tool", "observation": "tool",
}  # fmt: skip
_KNOWN = {"id", "conversations", "model", "system"}


def sniff(first: Any) -> bool:
    return isinstance(first, dict) and isinstance(first.get("conversations"), list)


def iter_items(f: ImportFile, *, default_source: str) -> Iterator[Item]:
    if f.is_json_array():
        records: Iterator[tuple[int, bytes | None]] = ((line, data) for _, line, data in f.json_array())
    else:
        records = f.lines()
    for lineno, data in records:
        if data is None:
            yield too_long(f, lineno)
            continue
        rec, bad = parse_json(data, lineno)
        if bad is not None:
            yield bad
            continue
        try:
            native, origins = to_native(rec)
            ext_id = None if native.get("id") not in (None, "") else stable_id(rec["conversations"])
            try:
                yield normalise(
                    native, default_source=default_source, line=lineno, content_hash=content_hash(NAME, data),
                    external_id=ext_id,
                )  # fmt: skip
            except RecordError as exc:
                raise translate(exc, origins) from None
        except RecordError as exc:
            yield rejected(exc, lineno, data)


def to_native(rec: Any) -> tuple[dict, list[str]]:
    if not isinstance(rec, dict):
        raise RecordError("", "expected a JSON object with a conversations array")
    messages = rec.get("conversations")
    if not isinstance(messages, list):
        raise RecordError("conversations", "missing" if messages is None else "expected an array")
    system: list[str] = []
    top_system = rec.get("system")
    if isinstance(top_system, str) and top_system:
        system.append(top_system)
    turns: list[dict] = []
    origins: list[str] = []
    for i, msg in enumerate(messages):
        where = f"conversations[{i}]"
        if not isinstance(msg, dict):
            raise RecordError(where, "expected an object with from and value")
        speaker = msg.get("from")
        value = msg.get("value")
        if value is not None and not isinstance(value, str):
            raise RecordError(f"{where}.value", "expected a string")
        if speaker == "system":
            if value:
                system.append(value)
            continue
        role = _SPEAKERS.get(speaker.lower()) if isinstance(speaker, str) else None
        if role is None:
            raise RecordError(
                f"{where}.from",
                "missing" if speaker is None else f"unknown speaker {str(speaker)[:40]!r} (human, gpt, system, tool)",
            )
        turn: dict[str, Any] = {"role": role, "content": value or ""}
        if role == "assistant" and system:
            turn["context"] = {"system_prompt": "\n\n".join(system)}
        if speaker != {"user": "human", "assistant": "gpt", "tool": "tool"}[role]:
            turn["metadata"] = {"from": speaker}
        for key in ("feedback", "created_at"):
            if key in msg:
                turn[key] = msg[key]
        turns.append(turn)
        origins.append(where)
    if not turns:
        raise RecordError("conversations", "empty: no human, gpt or tool messages")
    native: dict[str, Any] = {"turns": turns}
    if rec.get("id") not in (None, ""):
        native["id"] = rec["id"]
    if rec.get("model") is not None:
        native["model_version"] = rec["model"]
    metadata = {k: v for k, v in rec.items() if k not in _KNOWN}
    if metadata:
        native["metadata"] = metadata
    return native, origins
