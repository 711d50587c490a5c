"""The triage queue's filters, parsed by a Django form: a malformed value (a NUL byte, an owner or tag id that is
not a whole number) is a 400 naming the field, never a 500."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from annotations.triage import selectors
from annotations.triage.models import Status

MAX_ID = 2**63 - 1


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("open", "Open"), ("all", "All"), *Status.choices])
    owner = forms.CharField(required=False, max_length=20)
    environment = forms.CharField(required=False, max_length=16)
    model_version = forms.CharField(required=False, max_length=128)
    tag = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    sla = forms.BooleanField(required=False)

    def clean_owner(self) -> str:
        owner = self.cleaned_data["owner"]
        if owner in ("", "me", "none") or (owner.isascii() and owner.isdigit() and int(owner) <= MAX_ID):
            return owner
        raise ValidationError("Choose me, nobody or a person.")

    def filters(self) -> selectors.QueueFilters:
        data = self.cleaned_data
        return selectors.QueueFilters(
            status=data["status"] or "open", owner=data["owner"], environment=data["environment"],
            model_version=data["model_version"], tag=data["tag"], sla_breached=data["sla"],
        )


def ids(values: list[str], field: str) -> list[int]:
    """The whole-number ids of a repeated form field (empty values skipped), or a ValidationError naming it."""
    found = []
    for value in values:
        if value == "":
            continue
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
            raise ValidationError({field: "Ids must be whole numbers."})
        found.append(int(value))
    return found
