"""URLs of one object, built without ``reverse()`` on every call (hot paths build dozens per request)."""

from __future__ import annotations

import functools

from django.urls import get_script_prefix, reverse

_PROBE = 987654321


@functools.cache
def _parts(viewname: str, script_prefix: str) -> tuple[str, str]:
    head, _, tail = reverse(viewname, args=[_PROBE]).rpartition(str(_PROBE))
    return head, tail


def id_url_parts(viewname: str) -> tuple[str, str]:
    """``(head, tail)`` such that ``f"{head}{pk}{tail}"`` is ``reverse(viewname, args=[pk])``, for a URL pattern
    with one integer argument. Built once per process and script prefix."""
    return _parts(viewname, get_script_prefix())
