"""Request parsing shared by the apps: record ids and days as they appear in a request parameter."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

#: A record id in a parameter: ASCII digits only (``str.isdigit`` also accepts "¹", which ``int`` refuses), at most
#: 18 of them, so it always fits a bigint column.
ID = re.compile(r"[0-9]{1,18}")


def is_id(text: str) -> bool:
    return ID.fullmatch(text) is not None


def ids(values: list[str], field: str) -> list[int]:
    """The ids of a repeated parameter (empty values skipped), or a ValidationError naming ``field``."""
    found = []
    for value in values:
        if value == "":
            continue
        if not is_id(value):
            raise ValidationError({field: "Ids must be whole numbers."})
        found.append(int(value))
    return found


class IdListField(forms.Field):
    """Every value of a repeated parameter (``tags=1&tags=4``) as ids; empty values are skipped."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        found = []
        for item in value or []:
            if item in ("", None):
                continue
            text = str(item).strip()
            if not is_id(text):
                raise ValidationError(f"{item!r} is not an id.", code="invalid")
            found.append(int(text))
        return found


#: Days a filter accepts. Python's dates end at 0001-01-01 and 9999-12-31, so a filter at either end overflows as soon
#: as it is widened by a day or moved into another time zone; no conversation is that old or that far ahead.
EARLIEST_DAY = dt.date(1900, 1, 1)
LATEST_DAY = dt.date(2999, 12, 31)


def validate_day(day: dt.date) -> None:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValidationError(
            "Pick a date from %(earliest)s to %(latest)s.",
            code="out_of_range",
            params={"earliest": EARLIEST_DAY.isoformat(), "latest": LATEST_DAY.isoformat()},
        )


class DayField(forms.DateField):
    """A date filter: a DateField that refuses days outside EARLIEST_DAY..LATEST_DAY."""

    default_validators = [validate_day]


BIGINT_MAX = 2**63 - 1


class BigIntField(forms.IntegerField):
    """A whole number that fits a bigint column (PostgreSQL refuses a larger one with an error, not a miss)."""

    def __init__(self, *, min_value: int = -BIGINT_MAX, max_value: int = BIGINT_MAX, **kwargs: Any) -> None:
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)
