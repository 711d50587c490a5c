"""One vocabulary for every page: the labels of environments and reviewer roles come from their choices here, so a
dropdown, a badge and a filter chip never call the same thing "prod" in one place and "Production" in another.
A builtin library (settings.TEMPLATES): every template can use the filters without ``{% load %}``."""

from __future__ import annotations

from django import template
from django.http import QueryDict

from feedbackhub.roles import ROLE_LABELS
from sessions.forms import describe_filters
from sessions.models import Environment

register = template.Library()

_ENVIRONMENTS = dict(Environment.choices)


@register.filter
def env_label(value: str | None) -> str:
    """``prod`` -> ``Production``; a value outside the known environments is shown as it was logged."""
    return _ENVIRONMENTS.get(value or "", value or "")


@register.filter
def role_label(value: str | None) -> str:
    """A reviewer role's label (``domain_expert`` -> ``Domain expert``)."""
    return ROLE_LABELS.get(value or "", value or "")


@register.filter
def filter_summary(params: QueryDict) -> list[tuple[str, str]]:
    """A conversation-list query string as (label, value) pairs in the filter form's words."""
    return describe_filters(params)
