"""The upload form of the import page."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from sessions.models import ImportFormat

ACCEPTED_SUFFIXES = ".jsonl, .json, .csv, .ndjson, .txt or any of them gzip-compressed (.gz)"


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="Log file",
        help_text=f"{ACCEPTED_SUFFIXES}. Native FeedbackHub JSONL, OpenAI chat JSONL, ShareGPT or CSV.",
    )
    format = forms.ChoiceField(
        label="Format",
        choices=[("", "Detect automatically"), *ImportFormat.choices],
        required=False,
    )
    source = forms.CharField(
        label="Source name",
        max_length=100,
        initial="upload",
        help_text="Which app or log stream the conversations come from (ids are unique per source).",
        validators=[RegexValidator(r"^[\w][\w .:/@+-]*$", "Use letters, digits, spaces and . : / @ + - _ only.")],
    )

    def clean_source(self) -> str:
        return self.cleaned_data["source"].strip()
