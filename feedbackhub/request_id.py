"""A request id on every request, its response and every log record written while serving it.

The id comes from the proxy's ``X-Request-ID`` when it is well-formed (so one id follows a request through proxy, app
and logs), else a new one is made. :class:`RequestIdFilter` copies it onto log records (``request_id``), so the JSON
logs (settings.LOGGING) of one request can be found together. The middleware also writes one access-log record per
request (logger ``feedbackhub.request``: method, path, status, duration, view) and feeds the request-latency metric.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable

from celery import current_task
from django.http import HttpRequest, HttpResponse

from feedbackhub import metrics

HEADER = "X-Request-ID"
#: What a proxy-given id may look like: short, printable, no spaces (it is echoed in a header and logged).
VALID_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{8,128}$")

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
access_logger = logging.getLogger("feedbackhub.request")


def request_id_from(given: str | None) -> str:
    if given and VALID_ID.match(given):
        return given
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (empty outside a request) to every record, and in a Celery worker the running task's
    ``task_id`` and ``task_name`` (empty outside a task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = current_request_id.get()
        task = current_task
        request = getattr(task, "request", None) if task else None
        record.task_id = getattr(request, "id", None) or ""
        record.task_name = getattr(task, "name", None) or "" if record.task_id else ""
        return True


def _view_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None and match.view_name else "unmatched"


class RequestIdMiddleware:
    """First in MIDDLEWARE: the id is set before anything logs, and the timing covers the whole stack."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = request_id_from(request.headers.get(HEADER))
        request.request_id = rid  # type: ignore[attr-defined]
        token = current_request_id.set(rid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            duration = time.perf_counter() - started
            response[HEADER] = rid
            view = _view_name(request)
            metrics.observe_request(view=view, method=request.method or "", status=response.status_code,
                                    seconds=duration)
            access_logger.info(
                "%s %s %s %.1fms", request.method, request.path, response.status_code, duration * 1000,
                extra={"method": request.method, "path": request.path, "status": response.status_code,
                       "duration_ms": round(duration * 1000, 2), "view": view},
            )
            return response
        finally:
            current_request_id.reset(token)
