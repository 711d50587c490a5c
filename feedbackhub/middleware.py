"""Errors of the JSON API answered in JSON.

Django answers a request it refuses before any view code runs (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many
fields) with its HTML 400 page. Under ``/api/`` a client expects JSON in the API's error shape, and an oversize body
is a 413 (Payload Too Large), not a 400.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse

from feedbackhub.auth_tokens import json_error

API_PREFIX = "/api/"


class ApiErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX) and _declared_length(request) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return _too_big()
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        if isinstance(exception, RequestDataTooBig):
            return _too_big()
        if isinstance(exception, (SuspiciousOperation, BadRequest)):
            return json_error(400, "invalid_request", "The request could not be read.")
        return None


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _too_big() -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return json_error(413, "payload_too_large", f"The body is larger than {limit} bytes.", max_bytes=limit)
