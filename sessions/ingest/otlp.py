"""OTLP/HTTP traces in, conversations out: OpenTelemetry GenAI spans mapped onto the native record.

The receiver (``POST /v1/traces``) takes an ``ExportTraceServiceRequest`` as protobuf (``application/x-protobuf``)
or as OTLP JSON (``application/json``, hex ids, camelCase), gzip or not, and answers in the same encoding: an
``ExportTraceServiceResponse`` whose ``partial_success`` counts the spans it rejected and says why.

Which spans count: those with ``gen_ai.operation.name`` (or a ``gen_ai.system``/``gen_ai.provider.name``), following
the OpenTelemetry GenAI semantic conventions. Model calls (``chat``, ``text_completion``, ``generate_content``) give
turns: the new input messages (those after the last assistant message of ``gen_ai.input.messages``; the first call
also gives the history before it) and the output messages as the assistant's reply, with its model
(``gen_ai.response.model``, else ``gen_ai.request.model``), token usage, latency, finish reasons, system
instructions and tool calls. ``execute_tool`` spans give the tool's result (a tool turn, once per tool-call id).
Messages are read from ``gen_ai.input.messages``/``gen_ai.output.messages`` (JSON), from the older per-message span
events (``gen_ai.user.message``, ``gen_ai.choice``, ...), or from the flattened ``gen_ai.prompt.N.*`` attributes.
Attributes not mapped stay in the turn's metadata under ``otel``.

Spans group into conversations by ``gen_ai.conversation.id``, else ``session.id`` (on the span or an ancestor in the
same export), else their trace id. Spans of one conversation may arrive over many exports: each export merges its
new spans (by span id; a span sent again changes nothing) with the turns already stored and the whole conversation
goes through :func:`sessions.ingest.services.conversations_ingest`, so it is validated and stored like any other
record, and a conversation that grows is an update.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.http import HttpResponse
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from sessions.ingest import services
from sessions.models import Conversation, Environment, Turn

PROTOBUF, JSON = "protobuf", "json"
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
#: How long the receiver remembers which conversation a trace belongs to (for spans that do not name it).
TRACE_MEMORY_SECONDS = 3600
ROLE_MAP = {"user": "user", "human": "user", "assistant": "assistant", "model": "assistant", "ai": "assistant",
            "system": "system", "developer": "system", "tool": "tool", "function": "tool"}


class BadExport(Exception):
    pass


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]]
    resource: dict[str, Any]
    #: ``_messages(self)``, once worked out.
    messages: tuple[list[dict], list[dict], str] | None = None


def encoding_of(content_type: str) -> str | None:
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("application/x-protobuf", "application/protobuf"):
        return PROTOBUF
    if kind == "application/json":
        return JSON
    return None


# --- Decoding -----------------------------------------------------------------------------------------------------


def _pb_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _pb_attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        value = kv.value
        # Most attributes are strings: read them without a call of _pb_value each.
        out[kv.key] = value.string_value if value.WhichOneof("value") == "string_value" else _pb_value(value)
    return out


def _json_value(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        return None
    (which, value), = list(v.items())[:1]
    if which == "intValue":
        return int(value)
    if which == "doubleValue":
        return float(value)
    if which == "arrayValue":
        return [_json_value(x) for x in (value or {}).get("values", [])]
    if which == "kvlistValue":
        return {kv.get("key"): _json_value(kv.get("value")) for kv in (value or {}).get("values", [])}
    return value


def _json_attrs(kvs: Any) -> dict[str, Any]:
    if not isinstance(kvs, list):
        return {}
    return {kv["key"]: _json_value(kv.get("value")) for kv in kvs if isinstance(kv, dict) and "key" in kv}


def decode(body: bytes, encoding: str) -> list[Span]:
    """The spans of an export request; BadExport names what is wrong."""
    if encoding == PROTOBUF:
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BadExport(f"The body is not an OTLP ExportTraceServiceRequest (protobuf): {exc}.") from None
        spans = []
        for rs in request.resource_spans:
            resource = _pb_attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(Span(
                        s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name, s.start_time_unix_nano,
                        s.end_time_unix_nano, _pb_attrs(s.attributes),
                        [(e.name, e.time_unix_nano, _pb_attrs(e.attributes)) for e in s.events], resource,
                    ))
        return spans
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadExport(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadExport("The body must be an OTLP JSON object with resourceSpans.")
    spans = []
    try:
        for rs in data.get("resourceSpans") or []:
            resource = _json_attrs((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans") or []:
                for s in ss.get("spans") or []:
                    spans.append(Span(
                        str(s.get("traceId") or "").lower(), str(s.get("spanId") or "").lower(),
                        str(s.get("parentSpanId") or "").lower(), str(s.get("name") or ""),
                        int(s.get("startTimeUnixNano") or 0), int(s.get("endTimeUnixNano") or 0),
                        _json_attrs(s.get("attributes")),
                        [(str(e.get("name") or ""), int(e.get("timeUnixNano") or 0), _json_attrs(e.get("attributes")))
                         for e in s.get("events") or []],
                        resource,
                    ))
    except (AttributeError, TypeError, ValueError) as exc:
        raise BadExport(f"The body does not follow the OTLP JSON encoding: {exc}.") from None
    return spans


# --- Responses ----------------------------------------------------------------------------------------------------


def status_response(status: int, message: str, encoding: str | None) -> HttpResponse:
    """An OTLP error answer: a google.rpc.Status in the request's encoding."""
    if encoding == PROTOBUF:
        body = status_pb2.Status(code=_grpc_code(status), message=message).SerializeToString()
        response = HttpResponse(body, status=status, content_type="application/x-protobuf")
    else:
        response = HttpResponse(orjson.dumps({"code": _grpc_code(status), "message": message}), status=status,
                                content_type="application/json")
    return response


def _grpc_code(status: int) -> int:
    return {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 429: 8}.get(status, 2)


@dataclass
class ExportResult:
    rejected_spans: int = 0
    messages: list[str] = field(default_factory=list)
    conversations: list[dict[str, Any]] = field(default_factory=list)


def success_response(result: ExportResult, encoding: str) -> HttpResponse:
    message = "; ".join(result.messages)[:2000]
    if encoding == PROTOBUF:
        answer = trace_service_pb2.ExportTraceServiceResponse()
        if result.rejected_spans or message:
            answer.partial_success.rejected_spans = result.rejected_spans
            answer.partial_success.error_message = message
        return HttpResponse(answer.SerializeToString(), content_type="application/x-protobuf")
    body: dict[str, Any] = {}
    if result.rejected_spans or message:
        body["partialSuccess"] = {"rejectedSpans": result.rejected_spans, "errorMessage": message}
    return HttpResponse(orjson.dumps(body), content_type="application/json")


# --- Mapping ------------------------------------------------------------------------------------------------------


def _is_genai(span: Span) -> bool:
    a = span.attributes
    return "gen_ai.operation.name" in a or "gen_ai.system" in a or "gen_ai.provider.name" in a


def _operation(span: Span) -> str:
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


def _iso(ns: int) -> str | None:
    if not ns:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()


@dataclass
class _Turn:
    sort: tuple[int, int, int]
    record: dict[str, Any]


def _span_turns(span: Span, known_tool_ids: set[str], first: bool) -> list[_Turn]:
    """The turns one span adds to its conversation."""
    a = span.attributes
    op = _operation(span)
    unmapped = {k: a[k] for k in a.keys() - MAPPED}
    base_meta = {"otel": {"span_id": span.span_id, "trace_id": span.trace_id, "operation": op,
                          **({"attributes": unmapped} if unmapped else {})}}
    turns: list[_Turn] = []
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
        return [_Turn((span.start_ns, 0, 0), {"id": f"{span.span_id}:tool", "role": "tool", "content": content,
                                              "created_at": _iso(span.start_ns), "metadata": base_meta})]
    if op not in MODEL_OPERATIONS:
        return []
    inputs, outputs, system = _messages(span)
    started = _iso(span.start_ns)
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
        turns.append(_Turn((span.start_ns, 1, i), record))
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
            "created_at": _iso(span.end_ns or span.start_ns),
            "latency_ms": (span.end_ns - span.start_ns) // 1_000_000 if span.end_ns > span.start_ns else None,
            "usage": {k: v for k, v in usage.items() if v is not None} if i == 0 else None,
            "model_version": str(model)[:128] if model else None,
            "context": context or None,
            "metadata": base_meta,
        }
        # Ordered by the call's start like its inputs: a call's reply follows its inputs even when calls overlap.
        turns.append(_Turn((span.start_ns, 2, i), {k: v for k, v in record.items() if v is not None}))
    return turns


def _conversation_id(span: Span, by_id: dict[str, Span]) -> str | None:
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


def _trace_key(source: str, trace_id: str) -> str:
    return f"otlp:trace:{source}:{trace_id}"


def _source_of(span: Span, default_source: str | None) -> str | None:
    if default_source:
        return default_source
    name = span.resource.get("service.name")
    return str(name)[:100] if isinstance(name, str) and name else None


_TURN_FIELDS = (
    "role", "content", "created_at", "latency_ms", "confidence", "model_version", "prompt_tokens",
    "completion_tokens", "system_prompt",
)
_JSON_FIELDS = ("retrieved_documents", "tool_calls", "metadata")


def _key_query(keys: set[tuple[str, str]], *, prefix: str) -> Q:
    """A filter for the conversations with these ``(source, external_id)`` keys (``prefix`` leads to them)."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, external_id in keys:
        by_source[source].append(external_id)
    query = Q()
    for source, ids in by_source.items():
        query |= Q(**{f"{prefix}source": source, f"{prefix}external_id__in": ids})
    return query


def _stored_turns(keys: set[tuple[str, str]]) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], dict]:
    """The stored turns of these conversations as native turn records (with their sort key in metadata), and each
    conversation's metadata."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    metadata: dict[tuple[str, str], dict] = {}
    if not keys:
        return out, metadata
    query = _key_query(keys, prefix="conversation__")
    # The JSON columns are read as text and parsed with orjson: a conversation's every turn is read again on each
    # export that extends it, and the stdlib decoder was a third of an export's time (bench/ingest_bench.py).
    rows = Turn.objects.filter(query).order_by("conversation_id", "position").annotate(
        **{f"{name}_json": Cast(name, TextField()) for name in _JSON_FIELDS}
    ).values_list("conversation__source", "conversation__external_id", *_TURN_FIELDS,
                  *(f"{name}_json" for name in _JSON_FIELDS))
    for source, external_id, *values in rows:
        t = dict(zip(_TURN_FIELDS, values, strict=False))
        for name, text in zip(_JSON_FIELDS, values[len(_TURN_FIELDS):], strict=True):
            t[name] = orjson.loads(text) if text else None
        meta = t["metadata"] or {}
        record: dict[str, Any] = {"role": t["role"], "content": t["content"], "metadata": meta}
        if "id" in meta:
            record["id"] = meta.pop("id")
        if t["created_at"]:
            record["created_at"] = t["created_at"].isoformat()
        for name in ("latency_ms", "confidence"):
            if t[name] is not None:
                record[name] = t[name]
        if t["model_version"]:
            record["model_version"] = t["model_version"]
        usage = {k: t[k] for k in ("prompt_tokens", "completion_tokens") if t[k] is not None}
        if usage:
            record["usage"] = usage
        context = {k: t[k] for k in ("system_prompt", "retrieved_documents", "tool_calls") if t[k]}
        if context:
            record["context"] = context
        out[(source, external_id)].append(record)
    if out:
        for source, external_id, conv_meta in Conversation.objects.filter(
            _key_query(set(out), prefix="")
        ).values_list("source", "external_id", "metadata"):
            metadata[(source, external_id)] = conv_meta or {}
    return out, metadata
    query = _key_query(keys, prefix="conversation__")
    rows = Turn.objects.filter(query).select_related("conversation").order_by("conversation_id", "position")
    for t in rows:
        meta = dict(t.metadata or {})
        turn_id = meta.pop("id", None)
        record: dict[str, Any] = {"role": t.role, "content": t.content, "metadata": meta}
        if turn_id is not None:
            record["id"] = turn_id
        if t.created_at:
            record["created_at"] = t.created_at.isoformat()
        for name in ("latency_ms", "confidence"):
            if getattr(t, name) is not None:
                record[name] = getattr(t, name)
        if t.model_version:
            record["model_version"] = t.model_version
        usage = {k: getattr(t, k) for k in ("prompt_tokens", "completion_tokens") if getattr(t, k) is not None}
        if usage:
            record["usage"] = usage
        context = {k: v for k, v in (("system_prompt", t.system_prompt), ("retrieved_documents", t.retrieved_documents),
                                     ("tool_calls", t.tool_calls)) if v}
        if context:
            record["context"] = context
        key = (t.conversation.source, t.conversation.external_id)
        out[key].append(record)
        metadata[key] = t.conversation.metadata or {}
    return out, metadata


def _sort_of(record: dict[str, Any]) -> list[int]:
    return list((record.get("metadata") or {}).get("otel", {}).get("sort") or [0, 0, 0])


def export_ingest(
    spans: list[Span],
    *,
    may_write: Callable[[str], bool],
    default_source: str | None,
    label: str,
) -> ExportResult:
    """Map ``spans`` onto conversations and store them (see the module docstring). SourceForbidden when a span's
    source (the token's, or the resource's ``service.name`` for a token of several sources) is not the sender's."""
    result = ExportResult()
    by_id = {s.span_id: s for s in spans}
    ignored = unsourced = 0
    named: list[tuple[str, str | None, Span]] = []  # (source, conversation id or None, span)
    for s in spans:
        if not _is_genai(s):
            ignored += 1
            continue
        source = _source_of(s, default_source)
        if source is None:
            unsourced += 1
            continue
        if not may_write(source):
            raise services.SourceForbidden("resource.service.name", source)
        named.append((source, _conversation_id(s, by_id), s))
    # A span without a conversation id joins the conversation of its trace: named by another span of this export, or
    # of an earlier one (exporters send spans as they end, children before their parents).
    by_trace = {_trace_key(source, s.trace_id): cid for source, cid, s in named if cid}
    unnamed = {_trace_key(source, s.trace_id) for source, cid, s in named if not cid} - set(by_trace)
    if unnamed:
        by_trace.update({k: v for k, v in cache.get_many(list(unnamed)).items() if v})
    groups: dict[tuple[str, str], list[Span]] = defaultdict(list)
    for source, cid, s in named:
        key = _trace_key(source, s.trace_id)
        groups[(source, cid or by_trace.get(key) or f"trace:{s.trace_id}")].append(s)
    if by_trace:
        cache.set_many(by_trace, timeout=TRACE_MEMORY_SECONDS)
    if unsourced:
        result.rejected_spans += unsourced
        result.messages.append(f"{unsourced} spans name no source: bind the token to one source, or set service.name")
    if ignored:
        result.messages.append(f"{ignored} spans without gen_ai attributes were ignored")
    if not groups:
        return result
    # Read, extend and write each conversation under a lock of its key, so two exports extending the same
    # conversation at once (two web processes) follow one another instead of each dropping the other's turns.
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Traces are telemetry, as an import's chunks are: the answer need not wait for the disk (a crash of
            # PostgreSQL itself within a fraction of a second could lose the export; the database stays consistent).
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute(LOCK_KEYS, [sorted(f"{source}\x1f{conv_id}" for source, conv_id in groups)])
        _ingest_groups(groups, result, may_write=may_write, default_source=default_source, label=label)
    return result


#: Transaction-scoped advisory locks on conversation keys, taken in the order given (sorted: no deadlock).
LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(%s::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n"
)


def _new_turns(group: list[Span], *, known_spans: set[str], known_tools: set[str], first: bool) -> list[_Turn]:
    """The turns ``group``'s spans add (spans already stored, by id, add nothing), each with its sort key."""
    turns: list[_Turn] = []
    for s in sorted(group, key=lambda s: (s.start_ns, s.end_ns)):
        if s.span_id in known_spans:
            continue
        known_spans.add(s.span_id)
        new = _span_turns(s, known_tools, first)
        if new and _operation(s) in MODEL_OPERATIONS:
            first = False
        for t in new:
            t.record.setdefault("metadata", {}).setdefault("otel", {})["sort"] = list(t.sort)
        turns.extend(new)
    turns.sort(key=lambda t: t.sort)
    return turns


def _ingest_groups(groups: dict[tuple[str, str], list[Span]], result: ExportResult, *,
                   may_write: Callable[[str], bool], default_source: str | None, label: str) -> None:
    """Store each conversation's new turns: appended to a stored conversation when they all come after its last
    turn (the usual case: only the new turns are written), else by rebuilding and merging its whole record."""
    span_ids = [s.span_id for group in groups.values() for s in group]
    tool_ids = [str(s.attributes["gen_ai.tool.call.id"]) for group in groups.values() for s in group
                if "gen_ai.tool.call.id" in s.attributes]
    states = services.append_states(set(groups), span_ids=span_ids, tool_ids=[*tool_ids, *_called_tools(groups)])
    appends: list[services.Append] = []
    append_spans: list[int] = []
    rebuild: dict[tuple[str, str], list[Span]] = {}
    for key, group in groups.items():
        state = states.get(key)
        if state is None or state.last_sort is None:
            rebuild[key] = group
            continue
        turns = _new_turns(group, known_spans=set(state.span_ids), known_tools=set(state.tool_ids), first=False)
        if not turns:
            continue  # every span was stored before
        if turns[0].sort < tuple(state.last_sort):
            rebuild[key] = group  # a span that belongs before a stored turn: the record is rebuilt in order
            continue
        records = [t.record for t in turns]
        models = [t["model_version"] for t in records if t.get("model_version")]
        appends.append(services.Append(
            key=key, state=state, turns=records, metadata=_metadata(group, state.metadata),
            model_version=models[-1] if models else "", ended_at=_iso(max(s.end_ns for s in group)),
        ))
        append_spans.append(len(group))
    if appends:
        _report(result, services.conversations_append(appends=appends, label=label), append_spans)
    if rebuild:
        _rebuild(rebuild, result, may_write=may_write, default_source=default_source, label=label)


def _message_key(turn: dict[str, Any]) -> tuple[str, str, bytes]:
    calls = (turn.get("context") or {}).get("tool_calls") or []
    return turn.get("role", ""), turn.get("content", ""), orjson.dumps(calls, option=orjson.OPT_SORT_KEYS)


def _called_tools(groups: dict[tuple[str, str], list[Span]]) -> list[str]:
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


def _report(result: ExportResult, ingested: services.Result, spans_of: list[int]) -> None:
    for outcome, count in zip(ingested.outcomes, spans_of, strict=True):
        if outcome.status == services.REJECTED:
            result.rejected_spans += count
            result.messages.append(f"conversation {outcome.id}: {outcome.field or 'record'}: {outcome.reason}")
        result.conversations.append(outcome.as_dict())


def _rebuild(groups: dict[tuple[str, str], list[Span]], result: ExportResult, *,
             may_write: Callable[[str], bool], default_source: str | None, label: str) -> None:
    """Merge the groups' spans with their conversations' stored turns and send the whole records through the import
    merge (new conversations; spans out of order)."""
    stored, stored_meta = _stored_turns(set(groups))
    records = []
    spans_of: list[int] = []
    prefixes: dict[tuple[str, str], int] = {}
    for (source, conv_id), group in groups.items():
        existing = stored.get((source, conv_id), [])
        otel = [(t.get("metadata") or {}).get("otel", {}) for t in existing]
        new = _new_turns(group, known_spans={o.get("span_id") for o in otel if o.get("span_id")},
                         known_tools={str(c) for o in otel if (c := (o.get("tool") or {}).get("call_id"))},
                         first=not existing)
        # A model call that arrives after a later call of the same conversation (exports sent in parallel) repeats
        # messages the later call's input history brought already: keep those once.
        from_history = {_message_key(t) for t in existing if ":in:" in str(t.get("id", ""))}
        new = [t for t in new if _message_key(t.record) not in from_history]
        if not new:
            continue
        turns = sorted([*(_Turn(tuple(_sort_of(t)), t) for t in existing), *new],  # type: ignore[misc]
                       key=lambda t: t.sort)
        prefix = 0
        while prefix < len(existing) and turns[prefix].record is existing[prefix]:
            prefix += 1
        prefixes[(source, conv_id)] = prefix
        records.append(_record(source, conv_id, group, [t.record for t in turns], stored_meta.get((source, conv_id))))
        spans_of.append(len(group))
    if records:
        _report(result, services.conversations_ingest(
            records=records, may_write=may_write, default_source=default_source, label=label, stored_turns=prefixes,
        ), spans_of)


def _metadata(group: list[Span], stored: dict | None) -> dict[str, Any]:
    """The conversation's metadata: what it had, with its app's resource attributes (each turn keeps its own span
    and trace ids in ``metadata.otel``)."""
    stored = stored or {}
    return {**stored, "otel": {**(stored.get("otel") or {}), "resource": group[0].resource}}


def _record(source: str, conv_id: str, group: list[Span], turns: list[dict[str, Any]], stored: dict | None,
            ) -> dict[str, Any]:
    resource = group[0].resource
    attrs: dict[str, Any] = {}
    for s in group:
        attrs.update(s.attributes)
    env = resource.get("deployment.environment.name") or resource.get("deployment.environment")
    env = str(env).lower() if env else ""
    env = {"production": "prod", "development": "dev", "staging": "test"}.get(env, env)
    user = attrs.get("user.id") or attrs.get("enduser.id")
    models = [t.get("model_version") for t in turns if t.get("model_version")]
    record: dict[str, Any] = {
        "id": conv_id,
        "source": source,
        "turns": turns,
        "metadata": _metadata(group, stored),
    }
    if env in Environment.values:
        record["environment"] = env
    if user:
        record["user"] = {"id": str(user)[:255]}
    if models:
        record["model_version"] = models[-1]
    version = resource.get("service.version")
    if version:
        record["app_version"] = str(version)[:128]
    starts = [t["created_at"] for t in turns if t.get("created_at")]
    if starts:
        record["started_at"] = min(starts)
    ends = [s.end_ns for s in group if s.end_ns]
    if ends:
        record["ended_at"] = _iso(max(ends))
    return record

