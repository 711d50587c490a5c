"""Request parameters of the curation pages, parsed by Django forms: a malformed value (a non-number id, a NUL byte
in a filter) is a 400 naming the field, never a 500."""

from __future__ import annotations

from django import forms

from annotations.curation import selectors
from sessions.models import Environment

ID = {"required": False, "min_value": 1, "max_value": 2**63 - 1}


class CorrectionFilterForm(forms.Form):
    model_version = forms.CharField(required=False, max_length=128)
    environment = forms.ChoiceField(required=False, choices=[("", "Any"), *Environment.choices])
    tag = forms.IntegerField(**ID)
    q = forms.CharField(required=False, max_length=200)
    turn = forms.IntegerField(**ID)
    not_in = forms.IntegerField(**ID)
    offset = forms.IntegerField(required=False, min_value=0, max_value=10**7)

    def filters(self) -> selectors.CorrectionFilters:
        data = self.cleaned_data
        return selectors.CorrectionFilters(
            model_version=data["model_version"], environment=data["environment"], tag=data["tag"], q=data["q"],
            turn=data["turn"], not_in=data["not_in"],
        )


class ExamplePageForm(forms.Form):
    after = forms.IntegerField(**ID)


class ExportForm(forms.Form):
    version = forms.IntegerField(**ID)


class AddToDatasetForm(forms.Form):
    dataset = forms.IntegerField(**ID)
