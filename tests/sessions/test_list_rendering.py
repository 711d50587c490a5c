"""The session list's fast rendering paths print what Django's own rendering would, escaped the same way."""

from __future__ import annotations

import pytest
from django import forms
from django.test.html import parse_html
from django.urls import reverse

from sessions.forms import PlainCheckboxInput, PlainDateInput, PlainSelect, PlainTextInput
from sessions.templatetags.browse import kind_badges
from tests.factories import make_conversation

URL = reverse("conversations:list")
HOSTILE = '"><script>alert(1)</script>&amp;'


def _same_html(a: str, b: str) -> bool:
    """Equal as HTML: the same elements, attributes (in any order), escaped text and values."""
    return parse_html(a) == parse_html(b)


@pytest.mark.parametrize(
    ("plain", "stock", "value"),
    [
        (PlainTextInput(attrs={"type": "search", "data-x": True, "placeholder": HOSTILE}), forms.TextInput(
            attrs={"type": "search", "data-x": True, "placeholder": HOSTILE}), HOSTILE),
        (PlainTextInput(), forms.TextInput(), None),
        (PlainDateInput(attrs={"type": "date"}), forms.DateInput(attrs={"type": "date"}), "2026-03-01"),
        (PlainCheckboxInput(), forms.CheckboxInput(), True),
        (PlainCheckboxInput(), forms.CheckboxInput(), False),
    ],
)
def test_plain_inputs_match_django_widgets(plain, stock, value):
    attrs = {"id": "id_f"}
    assert _same_html(plain.render("f", value, attrs), stock.render("f", value, attrs))


@pytest.mark.parametrize("value", ["", "b", HOSTILE, "not listed"])
def test_plain_select_matches_django_select(value):
    choices = [("", "Any"), ("a", "A"), ("b", "B & co"), (HOSTILE, HOSTILE)]
    plain, stock = PlainSelect(choices=choices), forms.Select(choices=choices)
    attrs = {"id": "id_s"}
    assert _same_html(plain.render("s", value, attrs), stock.render("s", value, attrs))


def test_kind_badges_escape_and_show_a_dash_for_none():
    assert kind_badges([]) == '<span class="muted">\u2014</span>'
    html = kind_badges(["thumbs_down", "<b>odd</b>"])
    assert '<span class="badge kind kind-thumbs_down tone-neg">Thumbs down</span>' in html
    assert "<b>" not in html and "kind-&lt;b&gt;odd&lt;/b&gt;" in html


@pytest.mark.django_db
def test_ids_and_counts_are_never_localised(moderator_client, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    conv = make_conversation(id=1234567, turn_count=0)
    conv.__class__.objects.filter(pk=conv.pk).update(turn_count=12345)
    body = moderator_client.get(URL).content.decode()
    assert 'data-session-id="1234567"' in body
    assert 'href="/sessions/1234567/"' in body
    assert '<td class="num">12345</td>' in body
