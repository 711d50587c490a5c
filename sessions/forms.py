"""The conversation list's filter form (a GET form: every filter lives in the URL)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.http import QueryDict
from django.utils import timezone

from feedbackhub.forms import DayField
from sessions.models import Environment, FeedbackKind
from sessions.selectors import ConversationFilters, Cursor, FilterChoices
from sessions.selectors.filters import EXTRA_FILTERS

ANY = [("", "Any")]


class _DataChoiceField(forms.CharField):
    """A drop-down whose options come from the data; any value is accepted, so a link with a value that is not
    (or no longer) listed still filters, and shows that value as selected."""

    def __init__(self, **kwargs) -> None:
        super().__init__(required=False, max_length=255, widget=forms.Select, **kwargs)

    def set_options(self, values: list[str], current: str | None) -> None:
        options = list(values)
        if current and current not in options:
            options.append(current)
        self.widget.choices = ANY + [(value, value) for value in options]


class ConversationFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=500,
        label="Search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": 'Search text: refund "annual plan" -trial   (press / to focus)',
                "autocomplete": "off",
                "data-search-shortcut": True,
            }
        ),
    )
    environment = forms.ChoiceField(required=False, choices=ANY + list(Environment.choices), widget=forms.Select)
    model_version = _DataChoiceField(label="Model version")
    user_role = _DataChoiceField(label="User role")
    source = _DataChoiceField()
    app_version = forms.CharField(
        required=False, max_length=128, label="App version", widget=forms.TextInput(attrs={"placeholder": "exact"})
    )
    started_from = DayField(required=False, label="Started from", widget=forms.DateInput(attrs={"type": "date"}))
    started_to = DayField(required=False, label="Started to", widget=forms.DateInput(attrs={"type": "date"}))
    feedback = forms.ChoiceField(
        required=False, label="Feedback type", choices=ANY + list(FeedbackKind.choices), widget=forms.Select
    )
    negative = forms.BooleanField(required=False, label="Has negative feedback", widget=forms.CheckboxInput)
    category = forms.CharField(
        required=False, max_length=100, label="Feedback category",
        widget=forms.TextInput(attrs={"placeholder": "exact"}),
    )
    reviewed = forms.ChoiceField(
        required=False, label="Reviewed", widget=forms.Select,
        choices=ANY + [("yes", "Reviewed"), ("no", "Not reviewed yet")],
    )
    live = forms.BooleanField(required=False, label="Live (changed in the last minutes)", widget=forms.CheckboxInput)
    tag = forms.SlugField(
        required=False, max_length=80, label="Conversation tag",
        widget=forms.TextInput(attrs={"placeholder": "tag slug"}),
    )
    # Pagination cursors: carried by the Next/Previous links, never shown as fields.
    after = forms.CharField(required=False, max_length=64, label="Next page position")
    before = forms.CharField(required=False, max_length=64, label="Previous page position")

    FILTER_FIELDS = (
        "q", "environment", "model_version", "user_role", "source", "app_version",
        "started_from", "started_to", "feedback", "negative", "category", "tag", "reviewed", "live",
    )

    def __init__(self, data=None, *, choices: FilterChoices) -> None:
        super().__init__(data)
        for extra in EXTRA_FILTERS.values():
            self.fields[extra.name] = forms.CharField(
                required=False, max_length=200, label=extra.label,
                widget=forms.TextInput(attrs={"placeholder": extra.placeholder}),
            )
        for name, values in (
            ("model_version", choices.model_versions),
            ("user_role", choices.user_roles),
            ("source", choices.sources),
        ):
            current = self.data.get(name) if self.is_bound else None
            self.fields[name].set_options(values, current)  # type: ignore[attr-defined]

    def _clean_cursor(self, name: str) -> Cursor | None:
        raw = self.cleaned_data.get(name)
        if not raw:
            return None
        try:
            return Cursor.decode(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Invalid page position {raw!r}: {exc}.") from exc

    def clean_after(self) -> Cursor | None:
        return self._clean_cursor("after")

    def clean_before(self) -> Cursor | None:
        return self._clean_cursor("before")

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("started_from"), data.get("started_to")
        if start and end and start > end:
            self.add_error("started_to", "The end date is before the start date.")
        if data.get("after") and data.get("before"):
            self.add_error(None, "Give either a next-page or a previous-page position, not both.")
        for extra in EXTRA_FILTERS.values():
            value = (data.get(extra.name) or "").strip()
            if value:
                try:
                    extra.condition(value)
                except ValueError as exc:
                    self.add_error(extra.name, str(exc))
        return data

    def filters(self) -> ConversationFilters:
        """The cleaned filters; call only on a valid form."""
        data = self.cleaned_data
        return ConversationFilters(
            q=data["q"].strip(),
            environment=data["environment"],
            model_version=data["model_version"],
            user_role=data["user_role"],
            source=data["source"],
            app_version=data["app_version"].strip(),
            started_from=_day_start(data["started_from"]),
            # The end date is inclusive in the form, exclusive in the query.
            started_before=_day_start(data["started_to"] + dt.timedelta(days=1)) if data["started_to"] else None,
            feedback_kind=data["feedback"],
            negative_only=data["negative"],
            feedback_category=data["category"].strip(),
            session_tag=data["tag"],
            reviewed=data["reviewed"],
            live_since=live_since() if data["live"] else None,
            extra=tuple((name, data[name].strip()) for name in EXTRA_FILTERS if (data.get(name) or "").strip()),
        )

    def error_messages(self) -> list[str]:
        """Every error as one readable line naming its field."""
        lines = []
        for name, errors in self.errors.items():
            label = "Filters" if name == "__all__" else (self.fields[name].label or name.replace("_", " ").capitalize())
            lines.extend(f"{label}: {error}" for error in errors)
        return lines


def live_since() -> dt.datetime:
    """The start of the "live" window: conversations changed since then show as live (``LIVE_MINUTES``)."""
    return timezone.now() - dt.timedelta(minutes=settings.LIVE_MINUTES)


def describe_filters(params: QueryDict) -> list[tuple[str, str]]:
    """A list filter's query string in the words of the filter form: ``[("Environment", "Production"),
    ("Has negative feedback", "yes")]``, for saved views and anywhere a filter is shown rather than edited."""
    fields = ConversationFilterForm(choices=FilterChoices()).fields
    described = []
    for name, values in params.lists():
        field = fields.get(name)
        if field is None or name not in (*ConversationFilterForm.FILTER_FIELDS, *EXTRA_FILTERS):
            continue
        values = [v for v in values if v != ""]
        if not values:
            continue
        labels = dict(getattr(field, "choices", None) or [])
        shown = "yes" if isinstance(field, forms.BooleanField) else ", ".join(str(labels.get(v, v)) for v in values)
        described.append((field.label or name.replace("_", " ").capitalize(), shown))
    return described


def _day_start(day: dt.date | None) -> dt.datetime | None:
    if day is None:
        return None
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
