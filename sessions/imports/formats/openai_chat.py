"""OpenAI chat JSONL: one conversation per line.

Two shapes are read, and may be mixed in one file:

* fine-tuning files: ``{"messages": [{"role", "content", "tool_calls"?, "tool_call_id"?, "name"?, "weight"?}]}``
  with optional ``"tools"``;
* chat-completion logs: the request's ``messages`` plus optional ``id``, ``model``, ``created`` (epoch seconds),
  ``user``, ``metadata``, ``usage`` and the response's ``choices[0].message``, which becomes the last assistant turn.

System (and ``developer``) messages are not turns: they become the ``system_prompt`` context of the assistant turns
that follow them (all system messages so far, joined by blank lines). Assistant ``tool_calls`` are kept as the turn's
tool calls, ``role: "tool"`` messages as tool turns whose content is also filled in as the matching call's
``result``. Content given as a list of parts keeps its text parts. A message may carry native ``feedback`` and
``created_at``. Without an ``id`` (or ``metadata.conversation_id``) the conversation's id is a hash of its messages,
so an edited copy of such a record is a new conversation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sessions.imports.base import Item, Rejected, jsonl_records, rejected
from sessions.imports.errors import RecordError
from sessions.imports.normalise import ENVIRONMENTS, content_hash, normalise, stable_id
from sessions.imports.reader import ImportFile

NAME = "openai"
_ROLE = {"user": "user", "assistant": "assistant", "tool": "tool", "function": "tool"}
_SYSTEM = {"system", "developer"}
_LIFTED = ("environment", "user_role", "app_version")


def sniff(first: Any) -> bool:
    return isinstance(first, dict) and isinstance(first.get("messages"), list)


def iter_items(f: ImportFile, *, default_source: str) -> Iterator[Item]:
    for entry in jsonl_records(f):
        if isinstance(entry, Rejected):
            yield entry
            continue
        lineno, line, rec = entry
        try:
            native, origins = to_native(rec)
            ext_id = None if native.get("id") else stable_id(rec.get("messages"))
            try:
                yield normalise(
                    native, default_source=default_source, line=lineno, content_hash=content_hash(NAME, line),
                    external_id=ext_id,
                )  # fmt: skip
            except RecordError as exc:
                raise translate(exc, origins) from None
        except RecordError as exc:
            yield rejected(exc, lineno, line)


def translate(err: RecordError, origins: list[str]) -> RecordError:
    """Name a field of the native shape (``turns[3].content``) as it is in the file (``messages[4].content``)."""
    field = err.field
    if field.startswith("turns["):
        index, _, rest = field[6:].partition("]")
        if index.isdigit() and int(index) < len(origins):
            field = origins[int(index)] + rest
    return RecordError(field, err.reason)


def _text_content(value: Any, field: str) -> tuple[str, list[str]]:
    """Message content as text; a list of parts keeps its text and names the other part types."""
    if value is None or isinstance(value, str):
        return value or "", []
    if isinstance(value, list):
        texts, others = [], []
        for i, part in enumerate(value):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                else:
                    others.append(str(part.get("type", "unknown")))
            else:
                raise RecordError(f"{field}[{i}]", "expected a content part object")
        return "\n".join(texts), others
    raise RecordError(field, "expected a string or an array of content parts")


def to_native(rec: Any) -> tuple[dict, list[str]]:
    """Map one OpenAI record onto the native shape; also return, per turn, where it came from in the record."""
    if not isinstance(rec, dict):
        raise RecordError("", "expected a JSON object with a messages array")
    messages = rec.get("messages")
    if not isinstance(messages, list):
        raise RecordError("messages", "missing" if messages is None else "expected an array of messages")
    sources: list[tuple[str, Any]] = [(f"messages[{i}]", m) for i, m in enumerate(messages)]
    choices = rec.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict) and "message" in choices[0]:
        message = choices[0]["message"]
        if isinstance(message, dict) and choices[0].get("finish_reason") is not None:
            message = {**message, "finish_reason": choices[0]["finish_reason"]}
        sources.append(("choices[0].message", message))
    elif choices is not None and not isinstance(choices, list):
        raise RecordError("choices", "expected an array")

    model = rec.get("model")
    turns: list[dict] = []
    origins: list[str] = []
    system: list[str] = []
    calls: dict[str, dict] = {}
    for where, msg in sources:
        if not isinstance(msg, dict):
            raise RecordError(where, "expected a message object")
        role = msg.get("role")
        content, other_parts = _text_content(msg.get("content"), f"{where}.content")
        if role in _SYSTEM:
            if content:
                system.append(content)
            continue
        if role not in _ROLE:
            raise RecordError(
                f"{where}.role",
                "missing" if role is None else f"must be one of system, developer, user, assistant, tool; got {role!r}",
            )
        turn: dict[str, Any] = {"role": _ROLE[role], "content": content}
        meta: dict[str, Any] = {}
        for key in ("name", "weight", "refusal", "finish_reason"):
            if msg.get(key) is not None:
                meta[key] = msg[key]
        if other_parts:
            meta["content_parts"] = other_parts
        if turn["role"] == "assistant":
            context: dict[str, Any] = {}
            if system:
                context["system_prompt"] = "\n\n".join(system)
            tool_calls = _tool_calls(msg, where)
            if tool_calls:
                context["tool_calls"] = tool_calls
                for call in tool_calls:
                    if call.get("id"):
                        calls[str(call["id"])] = call
            if context:
                turn["context"] = context
            if model and where.startswith("choices"):
                turn["model_version"] = model
            if where.startswith("choices") and isinstance(rec.get("usage"), dict):
                turn["usage"] = rec["usage"]
        elif turn["role"] == "tool":
            call_id = msg.get("tool_call_id")
            if call_id is not None:
                meta["tool_call_id"] = call_id
                matching = calls.get(str(call_id))
                if matching is not None:
                    matching["result"] = content
        if meta:
            turn["metadata"] = meta
        for key in ("feedback", "created_at", "latency_ms", "confidence", "id"):
            if key in msg:
                turn[key] = msg[key]
        turns.append(turn)
        origins.append(where)
    if not turns:
        raise RecordError("messages", "no user, assistant or tool messages")

    metadata = rec.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise RecordError("metadata", "expected an object")
    metadata = dict(metadata or {})
    native: dict[str, Any] = {"turns": turns}
    conv_id = rec.get("id") or metadata.get("conversation_id") or metadata.get("session_id")
    if conv_id:
        native["id"] = conv_id
    if model:
        native["model_version"] = model
    if rec.get("created") is not None:
        native["started_at"] = rec["created"]
    user_id = rec.get("user") or metadata.get("user_id")
    if user_id or metadata.get("user_role"):
        native["user"] = {"id": user_id, "role": metadata.get("user_role")}
    for key in _LIFTED:
        value = metadata.get(key)
        if key == "environment" and (not isinstance(value, str) or value.lower() not in ENVIRONMENTS):
            continue
        if isinstance(value, str) and key != "user_role":
            native[key] = value
    if rec.get("tools") is not None:
        metadata["tools"] = rec["tools"]
    if metadata:
        native["metadata"] = metadata
    return native, origins


def _tool_calls(msg: dict, where: str) -> list[dict]:
    out: list[dict] = []
    raw = msg.get("tool_calls")
    if raw is not None and not isinstance(raw, list):
        raise RecordError(f"{where}.tool_calls", "expected an array")
    for i, call in enumerate(raw or []):
        if not isinstance(call, dict):
            raise RecordError(f"{where}.tool_calls[{i}]", "expected an object")
        fn: dict = call["function"] if isinstance(call.get("function"), dict) else call
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise RecordError(f"{where}.tool_calls[{i}].function.name", "missing")
        out.append({"id": call.get("id"), "name": name, "arguments": fn.get("arguments")})
    legacy = msg.get("function_call")
    if isinstance(legacy, dict) and legacy.get("name"):
        out.append({"id": None, "name": legacy["name"], "arguments": legacy.get("arguments")})
    return out
