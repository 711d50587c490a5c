"""The embeddable feedback widget's endpoints (docs/ingest.md, "The widget").

- ``GET /widget/v1.js``: the script (static/widget/v1.js), gzipped when the browser takes it.
- ``GET /widget/v1/config?key=pk_…``: the key's "What was wrong?" choices, for its allowed origins only.
- ``POST /widget/v1/feedback?key=pk_…`` (and its CORS preflight): one end-user feedback event for the key's source.

A publishable key is public, so every request is checked against the key's origins (the browser's ``Origin``
header; CORS headers are sent only to an allowed origin, and a refused origin writes nothing) and its rate limit.
No cookie is read or set: these views are outside the login, session and CSRF machinery.
"""

from __future__ import annotations

import gzip
from functools import cache

from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt

from feedbackhub import ratelimit
from feedbackhub.auth_tokens import json_error
from feedbackhub.http import BadEncoding, BodyTooLarge, read_body
from feedbackhub.models import WidgetKey
from feedbackhub.widget_keys import active_key, origin_allowed
from sessions.ingest import api, payloads, services
from sessions.models import FeedbackOrigin

SCRIPT = "widget/v1.js"
#: A widget request carries one event: a small body.
MAX_BODY_BYTES = 64 * 1024
PREFLIGHT_MAX_AGE = 600


@cache
def script_bytes() -> tuple[bytes, bytes]:
    """The widget script and its gzip (read once per process)."""
    path = finders.find(SCRIPT)
    if not path:
        raise FileNotFoundError(SCRIPT)
    with open(path, "rb") as f:  # noqa: PTH123
        raw = f.read()
    return raw, gzip.compress(raw, compresslevel=9, mtime=0)


@login_not_required
def script(request: HttpRequest) -> HttpResponse:
    raw, packed = script_bytes()
    accepts_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
    response = HttpResponse(packed if accepts_gzip else raw, content_type="text/javascript; charset=utf-8")
    if accepts_gzip:
        response["Content-Encoding"] = "gzip"
    response["Cache-Control"] = "public, max-age=300"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


def _cors(response: HttpResponse, origin: str) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = origin
    patch_vary_headers(response, ["Origin"])
    return response


def _key_and_origin(request: HttpRequest) -> tuple[WidgetKey | None, str, HttpResponse | None]:
    """The request's key and origin, or a refusal (without CORS headers: the browser shows the page nothing)."""
    origin = request.headers.get("Origin", "")
    row = active_key(request.GET.get("key", ""))
    if row is None:
        return None, origin, json_error(401, "invalid_key", "Unknown or revoked widget key.")
    if not origin_allowed(row, origin):
        refusal = json_error(403, "origin_forbidden", f"This widget key does not allow the origin {origin!r}.")
        return None, origin, refusal
    return row, origin, None


@csrf_exempt
@login_not_required
def config(request: HttpRequest) -> HttpResponse:
    row, origin, refusal = _key_and_origin(request)
    if refusal is not None:
        return refusal
    assert row is not None
    response = _cors(JsonResponse({"source": row.source, "categories": list(row.categories)}), origin)
    response["Cache-Control"] = "private, max-age=60"
    return response


@csrf_exempt
@login_not_required
def feedback(request: HttpRequest) -> HttpResponse:
    row, origin, refusal = _key_and_origin(request)
    if refusal is not None:
        return refusal
    assert row is not None
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = "POST"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return _cors(response, origin)
    if request.method != "POST":
        response = json_error(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST, OPTIONS"
        return _cors(response, origin)
    verdict = ratelimit.hit(f"widget-key:{row.pk}", limit=row.rate_per_minute)
    if not verdict.allowed:
        response = json_error(429, "rate_limited", f"Too many requests; retry in {verdict.reset_seconds} s.")
        for name, value in ratelimit.headers(verdict).items():
            response[name] = value
        response["Access-Control-Expose-Headers"] = "Retry-After"
        return _cors(response, origin)
    return _cors(_store(request, row, origin), origin)


def _store(request: HttpRequest, row: WidgetKey, origin: str) -> HttpResponse:
    try:
        body = read_body(request, limit=MAX_BODY_BYTES)
        events_in, _, single = payloads.batch(body, "application/json", key="events", max_records=1,
                                              single_allowed=True)
    except BodyTooLarge as exc:
        return json_error(413, "body_too_large", str(exc))
    except (BadEncoding, payloads.BadPayload) as exc:
        return json_error(400, "invalid_request", str(exc))
    if not single:
        return json_error(400, "invalid_request", "Send one feedback event as a JSON object.")
    event = events_in[0]
    if isinstance(event, dict) and event.get("source") not in (None, row.source):
        return json_error(403, "source_forbidden", "source: this widget key writes feedback for its own source only.",
                      field="source")
    result = services.feedback_events_ingest(
        events_in=events_in, may_write=lambda s: s == row.source, default_source=row.source,
        origin=FeedbackOrigin.WIDGET, extra_metadata={"widget": {"key": row.name, "origin": origin}},
    )
    outcome = result.outcomes[0]
    if outcome.status == services.REJECTED:
        return api.rejection(outcome)
    return JsonResponse({"status": outcome.status, "id": outcome.id},
                        status=201 if outcome.status == services.CREATED else 200)

