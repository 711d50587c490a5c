"""The ingest API (token scope ``ingest``, docs/ingest.md and ``/api/v1/openapi.json``):

- ``POST /api/v1/conversations``: native conversation records, answered per record;
- ``POST /api/v1/feedback``: end-user feedback events, idempotent by id;
- ``POST /v1/traces``: OTLP/HTTP traces (OpenTelemetry GenAI spans), see :mod:`sessions.ingest.otlp`.

Every request is counted against its token's limit (``INGEST_RATE_PER_MINUTE``, 429 with ``Retry-After``); bodies
are read up to ``INGEST_MAX_BODY_BYTES`` (413), gzip accepted; a malformed body is a 400 naming the field; a source
the token is not bound to is a 403 and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse

from feedbackhub import ratelimit
from feedbackhub.auth_tokens import json_error, token_covers_source, token_required
from feedbackhub.http import BadEncoding, BodyTooLarge, read_body
from feedbackhub.models import ApiScope, ApiToken
from sessions.ingest import otlp, otlp_wire, payloads, services

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


def token_default_source(token: ApiToken) -> str | None:
    """The source a record without one goes to: the token's only source, if it has exactly one."""
    return token.sources[0] if len(token.sources) == 1 and not token.all_sources else None


def _admit(request: HttpRequest) -> tuple[bytes | None, HttpResponse | None, dict[str, str]]:
    """Method, rate limit and body of an ingest request: ``(body, None, headers)`` or ``(None, refusal, headers)``."""
    if request.method != "POST":
        response = json_error(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return None, response, {}
    token: ApiToken = request.api_token  # type: ignore[attr-defined]
    verdict = ratelimit.hit(f"ingest-token:{token.pk}", limit=settings.INGEST_RATE_PER_MINUTE)
    headers = ratelimit.headers(verdict)
    if not verdict.allowed:
        return None, json_error(429, "rate_limited", f"More than {verdict.limit} requests a minute for this "
                                f"token; retry in {verdict.reset_seconds} s."), headers
    try:
        return read_body(request, limit=settings.INGEST_MAX_BODY_BYTES), None, headers
    except BodyTooLarge as exc:
        return None, json_error(413, "body_too_large", str(exc), field=None), headers
    except BadEncoding as exc:
        return None, json_error(400, "invalid_request", str(exc), field=None), headers


def _refused(exc: payloads.BadPayload | services.SourceForbidden) -> JsonResponse:
    """The answer to a body that cannot be taken: 400 or 413 naming the field, 403 for a source not the token's."""
    if isinstance(exc, services.SourceForbidden):
        return json_error(403, "source_forbidden", str(exc), field=exc.field)
    code = "body_too_large" if exc.status == 413 else "invalid_request"
    return json_error(exc.status, code, exc.message, field=exc.field)


def rejection(outcome: services.Outcome) -> JsonResponse:
    """The answer to a single rejected feedback event: 404 when what it names does not exist (yet), else 400; both
    name the field."""
    status, code = (404, "not_found") if outcome.not_found else (400, "invalid_request")
    message = f"{outcome.field}: {outcome.reason}" if outcome.field else str(outcome.reason)
    return json_error(status, code, message, field=outcome.field)


def _answer(response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
    for name, value in headers.items():
        response[name] = value
    return response


@token_required(ApiScope.INGEST)
def conversations(request: HttpRequest) -> HttpResponse:
    """POST /api/v1/conversations: create or update conversations; the answer lists each record's outcome."""
    body, refusal, headers = _admit(request)
    if refusal is not None:
        return _answer(refusal, headers)
    token: ApiToken = request.api_token  # type: ignore[attr-defined]
    try:
        records, source, _ = payloads.batch(body or b"", request.content_type or "", key="conversations",
                                            max_records=settings.INGEST_MAX_RECORDS)
        result = services.conversations_ingest(
            records=records, may_write=lambda s: token_covers_source(token, s),
            default_source=source or token_default_source(token), label=f"API: {token.name}",
            body_bytes=len(body or b""),
        )
    except (payloads.BadPayload, services.SourceForbidden) as exc:
        return _answer(_refused(exc), headers)
    return _answer(JsonResponse({
        "batch": result.batch_id,
        "counts": result.counts,
        "results": [o.as_dict() for o in result.outcomes],
    }), headers)


@token_required(ApiScope.INGEST)
def feedback(request: HttpRequest) -> HttpResponse:
    """POST /api/v1/feedback: one end-user feedback event (answered 201 created, 200 already stored, 400/404 with
    the field), or ``{"events": [...]}`` answered per event."""
    body, refusal, headers = _admit(request)
    if refusal is not None:
        return _answer(refusal, headers)
    token: ApiToken = request.api_token  # type: ignore[attr-defined]
    try:
        events_in, source, single = payloads.batch(body or b"", request.content_type or "", key="events",
                                                   max_records=settings.INGEST_MAX_RECORDS, single_allowed=True)
        result = services.feedback_events_ingest(
            events_in=events_in, may_write=lambda s: token_covers_source(token, s),
            default_source=source or token_default_source(token),
        )
    except (payloads.BadPayload, services.SourceForbidden) as exc:
        return _answer(_refused(exc), headers)
    if single:
        outcome = result.outcomes[0]
        if outcome.status == services.REJECTED:
            return _answer(rejection(outcome), headers)
        status = 201 if outcome.status == services.CREATED else 200
        return _answer(JsonResponse(outcome.as_dict(), status=status), headers)
    return _answer(JsonResponse({"counts": result.counts, "results": [o.as_dict() for o in result.outcomes]}),
                   headers)


@token_required(ApiScope.INGEST)
def traces(request: HttpRequest) -> HttpResponse:
    """POST /v1/traces: an OTLP/HTTP ExportTraceServiceRequest (protobuf or JSON, gzip accepted)."""
    body, refusal, headers = _admit(request)
    encoding = otlp_wire.encoding_of(request.content_type or "")
    if refusal is not None:
        return _answer(otlp_wire.status_response(refusal.status_code, _message(refusal), encoding), headers)
    if encoding is None:
        unsupported = otlp_wire.status_response(415, "Send application/x-protobuf or application/json.", "json")
        return _answer(unsupported, headers)
    token: ApiToken = request.api_token  # type: ignore[attr-defined]
    try:
        export = otlp_wire.decode(body or b"", encoding)
    except otlp_wire.BadExport as exc:
        return _answer(otlp_wire.status_response(400, str(exc), encoding), headers)
    try:
        result = otlp.export_ingest(export, may_write=lambda s: token_covers_source(token, s),
                                    default_source=token_default_source(token), label=f"OTLP: {token.name}")
    except services.SourceForbidden as exc:
        return _answer(otlp_wire.status_response(403, str(exc), encoding), headers)
    return _answer(otlp_wire.success_response(result, encoding), headers)


def _message(response: HttpResponse) -> str:
    try:
        return str(orjson.loads(response.content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase


@login_not_required
def openapi(request: HttpRequest) -> HttpResponse:
    """GET /api/v1/openapi.json: the OpenAPI 3.1 description of the JSON API."""
    return HttpResponse(OPENAPI_PATH.read_bytes(), content_type="application/json")
