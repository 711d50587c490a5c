"""The OTLP/HTTP wire format of ``POST /v1/traces``: an ``ExportTraceServiceRequest`` in, spans out; the answers.

Protobuf (``application/x-protobuf``, opentelemetry-proto's classes) or OTLP JSON (``application/json``: hex trace and
span ids, camelCase, 64-bit integers as strings), gzip or not (the view inflates). Attributes become plain Python
values. The success answer is an ``ExportTraceServiceResponse`` whose ``partial_success`` counts the spans rejected
and says why; an error is a ``google.rpc.Status``; both in the request's encoding.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.http import HttpResponse
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

PROTOBUF, JSON = "protobuf", "json"


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

