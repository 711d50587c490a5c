"""The recall API's request body, validated with Django forms over the decoded JSON object.

JSON has types that form data does not, so the fields here are strict: a string field refuses a number (a plain
``CharField`` would turn 42 into "42"), the whole-number field refuses ``true`` and ``"5"``. A key that is absent
and a key that is ``null`` are told apart (``MISSING``), because the API answers them differently for ``input``
and ``k``. ``first_error`` turns a form's errors into the one ``(field, message)`` the API answers with, the field
written as the client wrote it (``filters.tags[1]``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from annotations.selectors import all_tags

MAX_K = 20
DEFAULT_K = 5
MAX_INPUT_CHARS = 8000
FILTER_TEXT_FIELDS = ("environment", "model_version", "user_role")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: The value of a key the body does not have.
MISSING = _Missing()


class _JsonValue(forms.Widget):
    """Hands the field the decoded JSON value as it is, or ``MISSING``."""

    def value_from_datadict(self, data, files, name):
        return data.get(name, MISSING)

    def value_omitted_from_data(self, data, files, name):
        return name not in data


class _JsonField(forms.Field):
    widget = _JsonValue
    #: Whether an explicit ``null`` counts as absent.
    null_is_missing = True

    def __init__(self, *, required: bool = False, null_is_missing: bool | None = None, **kwargs) -> None:
        super().__init__(required=required, **kwargs)
        if null_is_missing is not None:
            self.null_is_missing = null_is_missing

    def clean(self, value):
        if value is MISSING or (value is None and self.null_is_missing):
            if self.required:
                raise ValidationError(self.error_messages["required"], code="required")
            return self.missing_value()
        return super().clean(value)

    def missing_value(self) -> Any:
        return None


def _string(value: Any, max_length: int, **params: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("expected a string, got %(type)s.", code="type",
                              params={"type": type(value).__name__, **params})
    if len(value) > max_length:
        raise ValidationError("at most %(max)s characters.", code="max_length", params={"max": max_length, **params})
    return value.strip()


class JsonTextField(_JsonField):
    """A JSON string, stripped; ``allow_blank=False`` refuses one that is only white space."""

    def __init__(self, *, max_length: int = 255, allow_blank: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_length, self.allow_blank = max_length, allow_blank

    def missing_value(self) -> str:
        return ""

    def to_python(self, value: Any) -> str:
        text = _string(value, self.max_length)
        if not text and not self.allow_blank:
            raise ValidationError("must not be empty.", code="blank")
        return text

    def validate(self, value: Any) -> None:
        """Blank is handled by ``to_python``; presence by ``clean``."""


class JsonWholeNumberField(_JsonField):
    null_is_missing = False

    def __init__(self, *, min_value: int, max_value: int, default: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_value, self.max_value, self.default = min_value, max_value, default

    def missing_value(self) -> int:
        return self.default

    def to_python(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not self.min_value <= value <= self.max_value:
            raise ValidationError("expected a whole number from %(min)s to %(max)s.", code="invalid",
                                  params={"min": self.min_value, "max": self.max_value})
        return value


class JsonObjectField(_JsonField):
    def missing_value(self) -> dict:
        return {}

    def to_python(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise ValidationError("expected an object.", code="type")
        return value


class JsonDayField(_JsonField):
    """An ISO 8601 date, or a date-time (its day in TIME_ZONE): the recall filters work by whole days. An empty
    string (or any false value) counts as absent."""

    def to_python(self, value: Any) -> dt.date | None:
        if not value:
            return None
        text = _string(value, 40)
        try:
            moment = parse_datetime(text)
            day = parse_date(text) if moment is None else None
        except ValueError:
            moment = day = None
        if moment is not None:
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
            day = timezone.localtime(moment).date()
        if day is None:
            raise ValidationError("%(text)r is not an ISO 8601 date (2026-01-31) or date-time.", code="invalid",
                                  params={"text": text})
        return day


class JsonTagsField(_JsonField):
    """A list of tag slugs or names (any case), as the ids of the tags, from the cached taxonomy (no query)."""

    def missing_value(self) -> list[int]:
        return []

    def to_python(self, value: Any) -> list[int]:
        if not isinstance(value, list):
            raise ValidationError("expected a list of tag slugs or names.", code="type")
        names = [_string(v, 80, item=i) for i, v in enumerate(value)]
        if not names:
            return []
        found: dict[str, int] = {}
        for tag in all_tags():
            found[tag.slug.lower()] = tag.pk
            found[tag.name.lower()] = tag.pk
        ids = []
        for i, name in enumerate(names):
            if name.lower() not in found:
                raise ValidationError("no tag with the slug or name %(name)r.", code="unknown_tag",
                                      params={"name": name, "item": i})
            ids.append(found[name.lower()])
        return sorted(set(ids))


class _JsonObjectForm(forms.Form):
    """A form over a decoded JSON object; keys it has no field for are errors (``code="unknown"``)."""

    unknown_message = "unknown field"

    def clean(self) -> dict:
        data = super().clean()
        expected = ", ".join(self.fields)
        for key in sorted(set(self.data) - set(self.fields)):
            self.add_error(None, ValidationError("%(key)s: %(what)s; expected %(expected)s.", code="unknown",
                                                 params={"key": key, "what": self.unknown_message,
                                                         "expected": expected}))
        return data


class RecallRequestForm(_JsonObjectForm):
    input = JsonTextField(
        required=True, max_length=MAX_INPUT_CHARS, allow_blank=False, null_is_missing=False,  # null: a wrong type
        error_messages={"required": "required (the end user's message to find similar cases for)."},
    )
    k = JsonWholeNumberField(min_value=1, max_value=MAX_K, default=DEFAULT_K)
    filters = JsonObjectField()


class RecallFiltersForm(_JsonObjectForm):
    unknown_message = "unknown filter"

    environment = JsonTextField()
    model_version = JsonTextField()
    user_role = JsonTextField()
    tags = JsonTagsField()
    since = JsonDayField()
    until = JsonDayField()

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "is before filters.since.")
        return data


def first_error(form: forms.Form, *, prefix: str = "") -> tuple[str | None, str]:
    """The error to answer with: an unknown key first, then the fields in order. Returns ``(field, message)`` with
    the message starting with the field's name."""
    errors = [(name, error) for name, errs in form.errors.as_data().items() for error in errs]
    errors.sort(key=lambda pair: pair[1].code != "unknown")
    name, error = errors[0]
    params = error.params or {}
    if error.code == "unknown":
        field = f"{prefix}{params['key']}"
        return field, f"{prefix}{next(iter(error))}"
    field = None if name == NON_FIELD_ERRORS else f"{prefix}{name}"
    if field and "item" in params:
        field = f"{field}[{params['item']}]"
    return field, f"{field}: {next(iter(error))}" if field else next(iter(error))
