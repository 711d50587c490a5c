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


@pytest.mark.django_db
def test_every_cell_is_escaped(moderator_client):
    make_conversation(
        external_id=HOSTILE, model_version=HOSTILE, user_role=HOSTILE, source=HOSTILE, app_version=HOSTILE,
        environment=HOSTILE[:16],
    )
    body = moderator_client.get(URL).content.decode()
    assert "<script>alert(1)" not in body
    row = body[body.index("data-session-id="):]
    row = row[: row.index("</tr>")]
    assert row.count("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;") == 5  # id, app, model, role, source


@pytest.mark.django_db
@pytest.mark.parametrize(("role_fixture", "selectable"), [("analyst", True), ("moderator", False)])
def test_bulk_tag_checkbox_only_for_those_who_may_tag(client, request, role_fixture, selectable):
    conv = make_conversation()
    client.force_login(request.getfixturevalue(role_fixture))
    body = client.get(URL).content.decode()
    checkbox = f'<input type="checkbox" class="row-select" name="ids" value="{conv.pk}" form="bulk-form"'
    assert (checkbox in body) is selectable
    assert f'<span class="session-tags" id="tags-{conv.pk}"></span>' in body
