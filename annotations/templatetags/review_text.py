"""Rendering a reply so that the browser's text content is exactly the stored text (selectors count on it)."""

import json

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from annotations import rendering

register = template.Library()


@register.filter
def exact_text(value: str) -> SafeString:
    """HTML-escape ``value`` and write carriage returns as ``&#13;``.

    The HTML parser turns a literal CR LF or CR into LF before it builds the DOM, which would shift every offset after
    it; a character reference is not normalised, so the DOM keeps the CR. Everything else is escaped by Django's
    ``escape`` first, so the result is as inert as ``{{ value }}``.
    """
    return mark_safe(escape(value).replace("\r", "&#13;"))  # noqa: S308 (escaped on the line above)


@register.filter
def as_json(value) -> str:
    """Pretty JSON for the audit trail's before/after (returned unsafe: the template escapes it)."""
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def pretty_json(value) -> str:
    """Tool calls and other JSON context as indented JSON, not a Python repr (returned unsafe: escaped)."""
    return rendering.pretty_json(value)


@register.filter
def json_or_text(value: str) -> str:
    """A tool turn's content as indented JSON when it is JSON, else as it is (returned unsafe: escaped)."""
    return rendering.json_or_text(value)
