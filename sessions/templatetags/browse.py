"""Small display helpers for the conversation list and trail. They return plain values; templates escape them."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone

from sessions.models import IMPLICIT_KINDS, NEGATIVE_KINDS, RATING_NEGATIVE_MAX, FeedbackKind

register = template.Library()

_LABELS = dict(FeedbackKind.choices)
_NEGATIVE = {str(kind) for kind in NEGATIVE_KINDS}
_IMPLICIT = {str(kind) for kind in IMPLICIT_KINDS}
_POSITIVE = {str(FeedbackKind.THUMBS_UP), str(FeedbackKind.COPY)}


@register.filter
def kind_label(kind: str) -> str:
    return _LABELS.get(kind, kind)


@register.filter
def kind_tone(kind: str) -> str:
    """``neg``, ``pos`` or ``neutral``: the colour of a feedback kind's badge in the list."""
    if kind in _NEGATIVE:
        return "neg"
    if kind in _POSITIVE:
        return "pos"
    return "neutral"


@register.filter
def event_tone(event) -> str:
    """The colour of one feedback event: negative as stored by the importer, else by kind (a high rating is
    positive)."""
    if event.is_negative:
        return "neg"
    if event.kind == FeedbackKind.RATING and event.rating is not None:
        return "neg" if event.rating <= RATING_NEGATIVE_MAX else "pos"
    return kind_tone(event.kind)


@register.filter
def is_implicit(kind: str) -> bool:
    return kind in _IMPLICIT


@register.filter
def duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """A short human duration between two datetimes, or an empty string."""
    if start is None or end is None or end < start:
        return ""
    seconds = int((end - start).total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def minute(value: dt.datetime | None) -> str:
    """``YYYY-MM-DD HH:MM`` in the current time zone; a cheaper ``date:"Y-m-d H:i"`` for long lists."""
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
