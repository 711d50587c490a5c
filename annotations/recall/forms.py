"""The semantic search page's form: free text plus the session list's filters (every value lives in the URL)."""

from __future__ import annotations

from django import forms

from annotations.models import Tag
from annotations.recall import selectors
from annotations.recall.models import SourceKind
from feedbackhub.forms import DayField
from sessions.models import Environment
from sessions.selectors import FilterChoices

ANY = [("", "Any")]
MAX_RESULTS = 20


class RecallSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=2000,
        label="Describe the problem",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "e.g. the bot promised a refund the policy does not allow   (press / to focus)",
                "autocomplete": "off",
                "data-search-shortcut": True,
            }
        ),
    )
    environment = forms.ChoiceField(required=False, choices=ANY + list(Environment.choices))
    model_version = forms.CharField(required=False, max_length=128, label="Model version", widget=forms.Select)
    user_role = forms.CharField(required=False, max_length=64, label="User role", widget=forms.Select)
    tag = forms.ModelChoiceField(
        queryset=Tag.objects.all(), required=False, to_field_name="slug", empty_label="Any", label="Tag"
    )
    source = forms.ChoiceField(required=False, label="Feedback from", choices=ANY + list(SourceKind.choices))
    date_from = DayField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = DayField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    resolved = forms.BooleanField(required=False, label="Resolved cases only")

    def __init__(self, data=None, *, choices: FilterChoices) -> None:
        super().__init__(data)
        for name, values in (("model_version", choices.model_versions), ("user_role", choices.user_roles)):
            current = self.data.get(name) if self.is_bound else None
            options = list(values)
            if current and current not in options:
                options.append(current)
            self.fields[name].widget.choices = ANY + [(v, v) for v in options]

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def filters(self) -> selectors.RecallFilters:
        """The cleaned filters; call only on a valid form."""
        data = self.cleaned_data
        return selectors.RecallFilters(
            environment=data["environment"],
            model_version=data["model_version"],
            user_role=data["user_role"],
            tag_ids=[data["tag"].pk] if data["tag"] else [],
            date_from=data["date_from"],
            date_to=data["date_to"],
            source=data["source"],
            resolved_only=data["resolved"],
        )

    def error_messages(self) -> list[str]:
        lines = []
        for name, errors in self.errors.items():
            label = "Search" if name == "__all__" else (self.fields[name].label or name.replace("_", " ").capitalize())
            lines.extend(f"{label}: {error}" for error in errors)
        return lines

