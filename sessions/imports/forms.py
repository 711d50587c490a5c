"""The upload form of the import page."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from sessions.imports.reader import human_bytes
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

    def __init__(self, *args, max_bytes: int | None = None, too_large: bool = False, **kwargs) -> None:
        """``too_large``: the upload handler stopped the file at ``max_bytes`` (IMPORT_MAX_FILE_BYTES)."""
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes
        self.too_large = too_large

    def clean_source(self) -> str:
        return self.cleaned_data["source"].strip()

    def clean(self) -> dict:
        # In clean(), not clean_file(): a file stopped by the handler may arrive as no file at all.
        if self.too_large:
            self.add_error(
                "file",
                f"The file is larger than the import limit of {human_bytes(self.max_bytes or 0)} "
                "(IMPORT_MAX_FILE_BYTES); split it into smaller files.",
            )
        return super().clean()
