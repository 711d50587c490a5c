"""The inbox's request parameters: a value the field does not accept is a 400 naming the field."""

from __future__ import annotations

from django import forms


class UserQueryForm(forms.Form):
    """The ``@`` autocomplete: what was typed after the ``@``."""

    q = forms.CharField(required=False, max_length=150)


class PageForm(forms.Form):
    page = forms.IntegerField(required=False, min_value=1, max_value=100_000)

    def clean_page(self) -> int:
        return self.cleaned_data["page"] or 1


class ReadForm(forms.Form):
    """Mark an item read, or (``unread``) unread again."""

    unread = forms.BooleanField(required=False)


class SeenForm(forms.Form):
    seen = forms.IntegerField(required=False, min_value=0)


def parse_seen(data) -> int | None:
    """The count the polling page shows. Lenient on purpose: anything unreadable asks for the header anew."""
    form = SeenForm(data)
    return form.cleaned_data["seen"] if form.is_valid() else None
