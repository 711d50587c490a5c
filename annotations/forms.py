"""The review workspace's request parameters, parsed by Django forms: a value that is not what the field expects (a
non-number version, a tag id like "¹") is a 400 naming the field, never a 500.

``parse`` is the views' one way in: it returns the cleaned data or raises the form's errors as a ValidationError,
which the views answer with the ``errors`` fragment like any other refused change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from annotations.models import AnnotationKind
from feedbackhub.forms import EARLIEST_DAY, LATEST_DAY, IdListField


def _text(**kwargs: Any) -> forms.CharField:
    # Text is kept as typed (spans and corrections are exact); the services trim what should be trimmed.
    return forms.CharField(required=False, strip=False, **kwargs)


class VersionForm(forms.Form):
    """The version the change was made on (a stale one is a conflict, answered by the service)."""

    version = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)


class AnnotationCreateForm(forms.Form):
    body = _text()
    tags = IdListField(required=False)
    kind = forms.ChoiceField(required=False, choices=AnnotationKind.choices)
    start = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    end = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    exact = _text()
    text_hash = forms.CharField(required=False, max_length=64)
    replacement = _text()

    def clean_kind(self) -> str:
        return self.cleaned_data["kind"] or AnnotationKind.COMMENT


class AnnotationEditForm(VersionForm):
    body = _text()
    tags = IdListField(required=False)
    tags_present = forms.BooleanField(required=False)
    replacement = _text()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # A form without the tag picker leaves the tags alone; one without a replacement field, the replacement.
        if not data.get("tags_present"):
            data["tags"] = None
        if "replacement" not in self.data:
            data["replacement"] = None
        return data


class StatusForm(VersionForm):
    resolved = forms.BooleanField(required=False)


class DecideForm(VersionForm):
    accept = forms.BooleanField(required=False)


class ReplyForm(VersionForm):
    body = _text()
    undo = forms.BooleanField(required=False)


class CorrectionForm(VersionForm):
    text = _text()
    rationale = _text()


class ChangesForm(forms.Form):
    """The poller's stamp: the last change it has seen, an ISO time with its offset."""

    since = forms.CharField(required=False)

    def clean_since(self) -> dt.datetime | None:
        # Lenient on purpose: a missing or unreadable stamp asks for the current state, as on a first poll.
        value = self.cleaned_data["since"]
        try:
            parsed = dt.datetime.fromisoformat(value) if value else None
        except ValueError:
            return None
        if parsed is None or parsed.tzinfo is None or not EARLIEST_DAY <= parsed.date() <= LATEST_DAY:
            return None  # also a stamp so near the ends of time that the poll's overlap would overflow
        # In UTC: PostgreSQL refuses offsets beyond 15:59, which Python accepts up to 23:59.
        return parsed.astimezone(dt.UTC)


def parse(form_class: type[forms.Form], data: QueryDict) -> dict[str, Any]:
    """The cleaned data of ``data``, or a ValidationError naming each refused field."""
    form = form_class(data)
    if not form.is_valid():
        raise ValidationError({field: [str(e) for e in errors] for field, errors in form.errors.items()})
    return form.cleaned_data
