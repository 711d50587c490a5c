"""Forms of the insights app: the dashboard's filters (a GET form), bulk tagging and saving a view."""

from __future__ import annotations

import datetime as dt

from django import forms

from annotations.insights.selectors import DEFAULT_DAYS, SPLITS, DashboardFilters
from feedbackhub.forms import BigIntField, DayField, is_id
from sessions.models import Environment

ANY = [("", "Any")]
#: Most rows a chips request answers for (a list page shows far fewer).
MAX_CHIP_ROWS = 500
#: Longest range the dashboard accepts (monthly buckets beyond two years).
MAX_RANGE_DAYS = 3 * 366


class DashboardFilterForm(forms.Form):
    date_from = DayField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = DayField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    environment = forms.ChoiceField(required=False, choices=ANY + list(Environment.choices), widget=forms.Select)
    user_role = forms.CharField(required=False, max_length=64, label="User role", widget=forms.Select)
    app_version = forms.CharField(
        required=False, max_length=128, label="App version", widget=forms.TextInput(attrs={"placeholder": "exact"})
    )
    split = forms.ChoiceField(
        required=False, label="Split negative rate by", widget=forms.Select,
        choices=[("model_version", "Model version"), ("environment", "Environment"), ("user_role", "User role")],
    )
    model_a = forms.CharField(required=False, max_length=128, label="Model A", widget=forms.Select)
    model_b = forms.CharField(required=False, max_length=128, label="Model B", widget=forms.Select)
    small = forms.ChoiceField(
        required=False, label="Small samples", widget=forms.Select,
        choices=[("", "Flag them"), ("hide", "Hide them")],
        help_text="Rates from fewer trials than the minimum sample are drawn hollow, or left out.",
    )

    def __init__(self, data=None, *, model_versions: list[str], user_roles: list[str]) -> None:
        super().__init__(data)
        for name, values in (("user_role", user_roles), ("model_a", model_versions), ("model_b", model_versions)):
            current = self.data.get(name) if self.is_bound else None
            options = list(values)
            if current and current not in options:
                options.append(current)
            self.fields[name].widget.choices = [("", "Busiest" if name.startswith("model") else "Any")] + [
                (v, v) for v in options
            ]

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if start > end:
                self.add_error("date_to", "The end date is before the start date.")
            elif (end - start).days + 1 > MAX_RANGE_DAYS:
                self.add_error("date_to", f"Pick a range of at most {MAX_RANGE_DAYS} days.")
        return data

    def filters(self, *, last_day: dt.date, first_day: dt.date | None = None) -> DashboardFilters:
        """The cleaned filters (call on a valid form). Missing dates fit the data: the range ends on ``last_day``
        (the newest day with data) and starts on ``first_day`` (the oldest), at most DEFAULT_DAYS before the end,
        so the charts are not mostly empty."""
        data = self.cleaned_data
        end = data.get("date_to") or last_day
        start = data.get("date_from") or (end - dt.timedelta(days=DEFAULT_DAYS - 1))
        if not data.get("date_from") and first_day is not None and start < first_day <= end:
            start = first_day
        if start > end:
            start = end
        return DashboardFilters(
            date_from=start,
            date_to=end,
            environment=data.get("environment") or "",
            user_role=data.get("user_role") or "",
            app_version=(data.get("app_version") or "").strip(),
            split=data.get("split") if data.get("split") in SPLITS else "model_version",
            model_a=data.get("model_a") or "",
            model_b=data.get("model_b") or "",
            hide_small=data.get("small") == "hide",
        )

    def error_messages(self) -> list[str]:
        lines = []
        for name, errors in self.errors.items():
            label = "Filters" if name == "__all__" else (self.fields[name].label or name)
            lines.extend(f"{label}: {error}" for error in errors)
        return lines


class SpanFilterForm(forms.Form):
    """The reviewer-tag drill-down: a tag and the dashboard's filters."""

    tag = BigIntField(min_value=1)
    date_from = DayField()
    date_to = DayField()
    environment = forms.CharField(required=False, max_length=16)
    user_role = forms.CharField(required=False, max_length=64)
    app_version = forms.CharField(required=False, max_length=128)

    def filters(self) -> DashboardFilters:
        d = self.cleaned_data
        return DashboardFilters(
            date_from=d["date_from"], date_to=d["date_to"], environment=d["environment"], user_role=d["user_role"],
            app_version=d["app_version"],
        )


class BulkTagForm(forms.Form):
    """Tag or untag: every match of the list filter (``scope=matching``) or the selected rows (``scope=selected``)."""

    ACTIONS = [("add", "Add tag"), ("remove", "Remove tag")]
    SCOPES = [("matching", "All matching"), ("selected", "Selected rows")]

    action = forms.ChoiceField(choices=ACTIONS)
    scope = forms.ChoiceField(choices=SCOPES)
    tag = forms.CharField(max_length=80, label="Tag", help_text="An existing tag's name, or a new one.")
    ids = forms.CharField(required=False, max_length=20_000)

    def clean_ids(self) -> list[int]:
        raw = self.cleaned_data.get("ids") or ""
        out = []
        for part in raw.replace(",", " ").split():
            if not is_id(part):
                raise forms.ValidationError(f"{part!r} is not a conversation id.")
            out.append(int(part))
        return out

    def clean(self) -> dict:
        data = super().clean()
        if data.get("scope") == "selected" and not data.get("ids"):
            self.add_error("ids", "Select at least one conversation first.")
        return data


class ChipsForm(forms.Form):
    """The list rows whose tag chips to render: ``ids``, comma-separated. Parts that are not ids are skipped (the
    list's loader builds the parameter; nothing is gained by failing a whole row set over one bad part)."""

    ids = forms.CharField(required=False, max_length=20_000)

    def clean_ids(self) -> list[int]:
        parts = (self.cleaned_data.get("ids") or "").split(",")
        return [int(p) for p in parts if is_id(p)][:MAX_CHIP_ROWS]


class SaveViewForm(forms.Form):
    name = forms.CharField(max_length=120, label="View name")
    shared = forms.BooleanField(required=False, label="Share with everyone")
