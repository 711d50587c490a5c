"""OpenTelemetry GenAI semantic conventions: what a span says, as native turn records.

Which spans count: those with ``gen_ai.operation.name`` (or a ``gen_ai.system``/``gen_ai.provider.name``). Model calls
(``chat``, ``text_completion``, ``generate_content``) give turns: the input messages new since the model's last answer
(all of them on a conversation's first call) and the output messages as the assistant's reply, with its model
(``gen_ai.response.model``, else ``gen_ai.request.model``), token usage, latency, finish reasons, system instructions
and tool calls. ``execute_tool`` spans give the tool's result (a tool turn, once per tool-call id). Messages are read
from ``gen_ai.input.messages``/``gen_ai.output.messages`` (JSON), from the older per-message span events
(``gen_ai.user.message``, ``gen_ai.choice``, ...), or from the flattened ``gen_ai.prompt.N.*`` attributes. Attributes
not mapped stay in the turn's metadata under ``otel``. https://opentelemetry.io/docs/specs/semconv/gen-ai/
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from sessions.ingest.otlp_wire import Span

MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
TOOL_OPERATION = "execute_tool"
#: Span attributes mapped onto fields (everything else under a ``gen_ai``-bearing span goes to metadata).
MAPPED = frozenset({
    "gen_ai.operation.name", "gen_ai.system", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens", "gen_ai.input.messages", "gen_ai.output.messages",
    "gen_ai.system_instructions", "gen_ai.conversation.id", "session.id", "user.id", "enduser.id",
    "gen_ai.tool.name", "gen_ai.tool.call.id", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "gen_ai.response.finish_reasons", "gen_ai.response.id",
})  # fmt: skip

ROLE_MAP = {"user": "user", "human": "user", "assistant": "assistant", "model": "assistant", "ai": "assistant",
            "system": "system", "developer": "system", "tool": "tool", "function": "tool"}


def is_genai(span: Span) -> bool:
    a = span.attributes
    return "gen_ai.operation.name" in a or "gen_ai.system" in a or "gen_ai.provider.name" in a


def operation(span: Span) -> str:
    op = span.attributes.get("gen_ai.operation.name")
    if isinstance(op, str) and op:
        return op
    return TOOL_OPERATION if "gen_ai.tool.name" in span.attributes else "chat"


def _json_attr(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _text_of(parts: Any) -> str:
    """The text of a message's parts (GenAI ``parts``), or of an older ``content`` value."""
    if parts is None:
        return ""
    if isinstance(parts, str):
        return parts
    if isinstance(parts, dict):
        return _text_of(parts.get("content") if "content" in parts else parts.get("text"))
    if isinstance(parts, list):
        texts = []
        for p in parts:
            if isinstance(p, str):
                texts.append(p)
            elif isinstance(p, dict) and p.get("type", "text") == "text":
                texts.append(_text_of(p.get("content") if "content" in p else p.get("text")))
        return "\n".join(t for t in texts if t)
    return str(parts)


def _tool_calls(message: dict) -> list[dict[str, Any]]:
    calls = []
    for p in message.get("parts") or []:
        if isinstance(p, dict) and p.get("type") == "tool_call":
            calls.append(_call(p.get("id"), p.get("name"), p.get("arguments")))
    for c in message.get("tool_calls") or []:  # the older event body: {id, type, function: {name, arguments}}
        if isinstance(c, dict):
            fn = c.get("function") if isinstance(c.get("function"), dict) else c
            calls.append(_call(c.get("id"), fn.get("name"), fn.get("arguments")))
    return calls


def _call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "name": name or "tool", "arguments": _json_attr(arguments)}


def _tool_response(message: dict) -> tuple[str | None, str]:
    for p in message.get("parts") or []:
        if isinstance(p, dict) and p.get("type") == "tool_call_response":
            response = p.get("response", p.get("result"))
            return p.get("id"), response if isinstance(response, str) else orjson.dumps(response).decode()
    return message.get("tool_call_id") or message.get("id"), _text_of(message.get("parts", message.get("content")))


def _messages(span: Span) -> tuple[list[dict], list[dict], str]:
    """(input messages, output messages, system instructions) of a model-call span, whatever way they were sent."""
    if span.messages is None:
        span.messages = _read_messages(span)
    return span.messages


def _read_messages(span: Span) -> tuple[list[dict], list[dict], str]:
    a = span.attributes
    inputs = _json_attr(a.get("gen_ai.input.messages"))
    outputs = _json_attr(a.get("gen_ai.output.messages"))
    system = _text_of(_json_attr(a.get("gen_ai.system_instructions")))
    inputs = inputs if isinstance(inputs, list) else []
    outputs = outputs if isinstance(outputs, list) else []
    if not inputs and not outputs:
        inputs, outputs = _messages_from_events(span)
    if not inputs and not outputs:
        inputs, outputs = _messages_from_indexed(a)
    return [m for m in inputs if isinstance(m, dict)], [m for m in outputs if isinstance(m, dict)], system


def _messages_from_events(span: Span) -> tuple[list[dict], list[dict]]:
    inputs, outputs = [], []
    for name, _, attrs in span.events:
        body = _json_attr(attrs.get("gen_ai.event.content") or attrs.get("event.body") or attrs.get("body"))
        if not isinstance(body, dict):
            body = {k: _json_attr(v) for k, v in attrs.items()}
        if name in ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message"):
            inputs.append({**body, "role": body.get("role") or name.split(".")[1]})
        elif name == "gen_ai.choice":
            message = body.get("message") if isinstance(body.get("message"), dict) else body
            outputs.append({**message, "role": "assistant", "finish_reason": body.get("finish_reason")})
        elif name == "gen_ai.content.prompt":
            prompt = _json_attr(attrs.get("gen_ai.prompt"))
            inputs.extend(prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}])
        elif name == "gen_ai.content.completion":
            completion = _json_attr(attrs.get("gen_ai.completion"))
            if not isinstance(completion, list):
                completion = [{"role": "assistant", "content": completion}]
            outputs.extend(completion)
    return inputs, outputs


def _messages_from_indexed(a: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    def collect(prefix: str) -> list[dict]:
        found: dict[int, dict] = defaultdict(dict)
        for key, value in a.items():
            if key.startswith(prefix):
                index, _, rest = key[len(prefix):].partition(".")
                if index.isdigit() and rest:
                    found[int(index)][rest] = value
        return [found[i] for i in sorted(found)]

    return collect("gen_ai.prompt."), collect("gen_ai.completion.")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def iso(ns: int) -> str | None:
    if not ns:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()


@dataclass
class MappedTurn:
    """A turn record and where it goes in its conversation: (start of its span, input/output, place)."""

    sort: tuple[int, int, int]
    record: dict[str, Any]


def span_turns(span: Span, known_tool_ids: set[str], first: bool) -> list[MappedTurn]:
    """The turns one span adds to its conversation."""
    a = span.attributes
    op = operation(span)
    unmapped = {k: a[k] for k in a.keys() - MAPPED}
    base_meta = {"otel": {"span_id": span.span_id, "trace_id": span.trace_id, "operation": op,
                          **({"attributes": unmapped} if unmapped else {})}}
    turns: list[MappedTurn] = []
    if op == TOOL_OPERATION:
        call_id = a.get("gen_ai.tool.call.id")
        if call_id is not None and str(call_id) in known_tool_ids:
            return []
        result = a.get("gen_ai.tool.call.result")
        content = result if isinstance(result, str) else ("" if result is None else orjson.dumps(result).decode())
        if call_id is not None:
            known_tool_ids.add(str(call_id))
        base_meta["otel"]["tool"] = {"name": a.get("gen_ai.tool.name"), "call_id": call_id,
                                     "arguments": _json_attr(a.get("gen_ai.tool.call.arguments"))}
        return [MappedTurn((span.start_ns, 0, 0), {"id": f"{span.span_id}:tool", "role": "tool", "content": content,
                                              "created_at": iso(span.start_ns), "metadata": base_meta})]
    if op not in MODEL_OPERATIONS:
        return []
    inputs, outputs, system = _messages(span)
    started = iso(span.start_ns)
    system_parts = [system] if system else []
    roles = [ROLE_MAP.get(str(m.get("role")), "user") for m in inputs]
    system_parts += [_text_of(m.get("parts", m.get("content"))) for m, r in zip(inputs, roles, strict=True)
                     if r == "system"]
    # The messages new since the model's last answer (all of them for a conversation's first call).
    start = 0 if first else next((i + 1 for i in range(len(roles) - 1, -1, -1) if roles[i] == "assistant"), 0)
    new_inputs = [(m, r) for m, r in zip(inputs[start:], roles[start:], strict=True) if r != "system"]
    for i, (m, role) in enumerate(new_inputs):
        if role == "tool":
            call_id, content = _tool_response(m)
            if call_id is not None and str(call_id) in known_tool_ids:
                continue
            if call_id is not None:
                known_tool_ids.add(str(call_id))
            record = {"role": "tool", "content": content, "metadata": {"otel": {"tool": {"call_id": call_id}}}}
        else:
            record = {"role": role, "content": _text_of(m.get("parts", m.get("content")))}
            calls = _tool_calls(m)
            if role == "assistant" and calls:
                record["context"] = {"tool_calls": calls}
        record["id"] = f"{span.span_id}:in:{i}"
        record["created_at"] = started
        turns.append(MappedTurn((span.start_ns, 1, i), record))
    model = a.get("gen_ai.response.model") or a.get("gen_ai.request.model")
    usage = {"prompt_tokens": _int(a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens"))),
             "completion_tokens": _int(a.get("gen_ai.usage.output_tokens", a.get("gen_ai.usage.completion_tokens")))}
    provider = a.get("gen_ai.provider.name") or a.get("gen_ai.system")
    finish = a.get("gen_ai.response.finish_reasons")
    base_meta["otel"].update({k: v for k, v in (("provider", provider), ("finish_reasons", finish),
                                                ("response_id", a.get("gen_ai.response.id"))) if v})
    for i, m in enumerate(outputs or [{}]):
        calls = _tool_calls(m)
        context: dict[str, Any] = {}
        if system_parts:
            context["system_prompt"] = "\n\n".join(p for p in system_parts if p)
        if calls:
            context["tool_calls"] = calls
        record = {
            "id": f"{span.span_id}:out:{i}", "role": "assistant",
            "content": _text_of(m.get("parts", m.get("content"))),
            "created_at": iso(span.end_ns or span.start_ns),
            "latency_ms": (span.end_ns - span.start_ns) // 1_000_000 if span.end_ns > span.start_ns else None,
            "usage": {k: v for k, v in usage.items() if v is not None} if i == 0 else None,
            "model_version": str(model)[:128] if model else None,
            "context": context or None,
            "metadata": base_meta,
        }
        # Ordered by the call's start like its inputs: a call's reply follows its inputs even when calls overlap.
        turns.append(MappedTurn((span.start_ns, 2, i), {k: v for k, v in record.items() if v is not None}))
    return turns


def conversation_id(span: Span, by_id: dict[str, Span]) -> str | None:
    """The span's ``gen_ai.conversation.id`` (else ``session.id``), or its nearest ancestor's in this export."""
    seen = 0
    s: Span | None = span
    while s is not None and seen < 64:
        for key in ("gen_ai.conversation.id", "session.id"):
            value = s.attributes.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)[:255]
        s = by_id.get(s.parent_span_id) if s.parent_span_id else None
        seen += 1
    return None


def new_turns(group: list[Span], *, known_spans: set[str], known_tools: set[str], first: bool) -> list[MappedTurn]:
    """The turns ``group``'s spans add (spans already stored, by id, add nothing), each with its sort key."""
    turns: list[MappedTurn] = []
    for s in sorted(group, key=lambda s: (s.start_ns, s.end_ns)):
        if s.span_id in known_spans:
            continue
        known_spans.add(s.span_id)
        new = span_turns(s, known_tools, first)
        if new and operation(s) in MODEL_OPERATIONS:
            first = False
        for t in new:
            t.record.setdefault("metadata", {}).setdefault("otel", {})["sort"] = list(t.sort)
        turns.extend(new)
    turns.sort(key=lambda t: t.sort)
    return turns


def message_key(turn: dict[str, Any]) -> tuple[str, str, bytes]:
    calls = (turn.get("context") or {}).get("tool_calls") or []
    return turn.get("role", ""), turn.get("content", ""), orjson.dumps(calls, option=orjson.OPT_SORT_KEYS)


def called_tools(groups: dict[tuple[str, str], list[Span]]) -> list[str]:
    """Tool-call ids that the groups' model calls answer with their new input (tool messages after the model's last
    answer), to dedupe against."""
    ids = []
    for group in groups.values():
        for s in group:
            raw = s.attributes.get("gen_ai.input.messages")
            if not (isinstance(raw, str) and "tool_call_response" in raw):
                continue
            inputs, _, _ = _messages(s)
            for m in reversed(inputs):
                role = ROLE_MAP.get(str(m.get("role")), "user")
                if role == "assistant":
                    break
                if role == "tool" and (call_id := _tool_response(m)[0]) is not None:
                    ids.append(str(call_id))
    return ids
