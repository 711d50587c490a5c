"""The triage queue's filters, parsed by a Django form: a malformed value (a NUL byte, an owner or tag id that is
not a whole number) is a 400 naming the field, never a 500."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from annotations.triage import selectors
from annotations.triage.models import Status
from feedbackhub.forms import is_id


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("open", "Open"), ("all", "All"), *Status.choices])
    owner = forms.CharField(required=False, max_length=20)
    environment = forms.CharField(required=False, max_length=16)
    model_version = forms.CharField(required=False, max_length=128)
    tag = forms.IntegerField(required=False, min_value=1, max_value=10**18 - 1)
    sla = forms.BooleanField(required=False)

    def clean_owner(self) -> str:
        owner = self.cleaned_data["owner"]
        if owner in ("", "me", "none") or is_id(owner):
            return owner
        raise ValidationError("Choose me, nobody or a person.")

    def filters(self) -> selectors.QueueFilters:
        data = self.cleaned_data
        return selectors.QueueFilters(
            status=data["status"] or "open", owner=data["owner"], environment=data["environment"],
            model_version=data["model_version"], tag=data["tag"], sla_breached=data["sla"],
        )


class GuidanceForm(forms.Form):
    """A cluster's guidance note (its length is the service's rule); a NUL byte is refused here."""

    guidance = forms.CharField(required=False, strip=False)
