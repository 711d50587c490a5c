"""HTTP helpers every app's views share."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """The request type of views behind django-htmx's middleware (``request.htmx``), for type checkers."""

    htmx: HtmxDetails
