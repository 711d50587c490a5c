"""Request parameters of the curation pages. Integer parameters that do not parse make the request a 400
(``BadRequest``); filters that merely name an unknown choice fall back to "any", as the filter links expect."""

from __future__ import annotations

from django import forms
from django.core.exceptions import BadRequest

from annotations.curation.models import Dataset, ExampleStatus, ExportFormat
from annotations.curation.selectors import CorrectionFilters
from feedbackhub.forms import BigIntField
from sessions.models import Environment

#: Longest free-text filter kept (longer text is cut, not refused: it comes from a search box).
MAX_QUERY_CHARS = 200


def valid_or_400(form: forms.Form) -> dict:
    """The cleaned data of a GET-parameter form, or ``BadRequest`` naming the fields that are wrong."""
    if not form.is_valid():
        raise BadRequest("; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()))
    return form.cleaned_data


class _LenientChoiceField(forms.CharField):
    """A choice from ``choices``, or "" for anything else (filter values from old links)."""

    def __init__(self, *, choices: list[str], **kwargs) -> None:
        super().__init__(required=False, **kwargs)
        self.allowed = set(choices)

    def clean(self, value):
        value = super().clean(value)
        return value if value in self.allowed else ""


class ExamplePageForm(forms.Form):
    """A dataset's examples: the status filter and the keyset cursor."""

    status = _LenientChoiceField(choices=ExampleStatus.values)
    after = BigIntField(required=False)


class CorrectionFilterForm(forms.Form):
    """The approved-corrections list's filters and its offset (also the ``query`` replayed by "add all")."""

    model_version = forms.CharField(required=False)
    environment = _LenientChoiceField(choices=Environment.values)
    tag = BigIntField(required=False)
    q = forms.CharField(required=False)
    turn = BigIntField(required=False)
    not_in = BigIntField(required=False)
    offset = BigIntField(required=False)

    def clean_q(self) -> str:
        return self.cleaned_data["q"][:MAX_QUERY_CHARS]

    def clean_offset(self) -> int:
        return max(0, self.cleaned_data["offset"] or 0)

    def filters(self) -> CorrectionFilters:
        data = self.cleaned_data
        return CorrectionFilters(
            model_version=data["model_version"], environment=data["environment"], tag=data["tag"], q=data["q"],
            turn=data["turn"], not_in=data["not_in"],
        )


class ExportForm(forms.Form):
    """An export request: the format, optionally a version number, and the DPO variant."""

    format = forms.ChoiceField(choices=ExportFormat.choices)
    version = BigIntField(required=False)
    dpo_form = forms.CharField(required=False)
    #: Admins only: export the original text, private data included (recorded on the job).
    unscrubbed = forms.BooleanField(required=False)


class CorrectionAddForm(forms.Form):
    """The dataset to add corrections to."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())


class ReviewForm(forms.Form):
    """One example's review: the decision, the notes, and the status filter the page shows (for its counts)."""

    decision = forms.ChoiceField(choices=[("", "Save notes"), ("approve", "Approve"), ("reject", "Reject")],
                                 required=False)
    notes = forms.CharField(required=False, strip=False)
    filter = _LenientChoiceField(choices=ExampleStatus.values)


class BulkReviewForm(forms.Form):
    """Approve or reject the filtered set: without ``confirm`` it asks for a confirmation naming the count; with it,
    ``fingerprint`` must be the confirmation's."""

    status = forms.ChoiceField(choices=[("", "All"), *ExampleStatus.choices], required=False)
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    confirm = forms.BooleanField(required=False)
    fingerprint = forms.CharField(required=False, max_length=64)


class VersionCutForm(forms.Form):
    """Cutting a version: the note, and the fingerprint of the approved examples its preview showed."""

    note = forms.CharField(required=False, max_length=10_000)
    fingerprint = forms.CharField(required=False, max_length=64)
