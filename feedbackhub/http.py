"""HTTP helpers every app's views share."""

from __future__ import annotations

import zlib

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """The request type of views behind django-htmx's middleware (``request.htmx``), for type checkers."""

    htmx: HtmxDetails


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The body is larger than {limit} bytes.")
        self.limit = limit


class BadEncoding(Exception):
    pass


def read_body(request: HttpRequest, *, limit: int) -> bytes:
    """The request body, gunzipped when ``Content-Encoding: gzip``, at most ``limit`` bytes either way.

    For endpoints whose bodies may exceed ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``request.body`` refuses those): the
    stream is read here, never more than ``limit`` + 1 bytes of it, and a gzip body is inflated in bounded steps, so
    a small bomb cannot expand in memory. Raises BodyTooLarge, or BadEncoding for an unknown encoding or broken gzip.
    """
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > limit:
        raise BodyTooLarge(limit)
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise BodyTooLarge(limit)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise BadEncoding(f"Content-Encoding {encoding!r} is not supported (use gzip or none).")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BadEncoding(f"The gzip body is broken: {exc}.") from None
    if len(out) > limit:
        raise BodyTooLarge(limit)
    if not inflater.eof:
        raise BadEncoding("The gzip body is truncated.")
    return out
