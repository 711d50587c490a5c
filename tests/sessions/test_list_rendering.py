"""The conversation list's rows: every value escaped, ids and counts never localised, bulk-tag boxes for taggers."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.sessions.factories import ConversationFactory

URL = reverse("conversations:list")
HOSTILE = '"><script>alert(1)</script>&amp;'


@pytest.mark.django_db
def test_feedback_badges_are_escaped_and_a_row_without_feedback_shows_a_dash(moderator_client):
    quiet = ConversationFactory()
    loud = ConversationFactory()
    loud.__class__.objects.filter(pk=loud.pk).update(feedback_kinds=["thumbs_down", "<b>odd</b>"])
    body = moderator_client.get(URL).content.decode()
    assert '<span class="badge kind kind-thumbs_down tone-neg">Thumbs down</span>' in body
    assert "<b>odd" not in body and "kind-&lt;b&gt;odd&lt;/b&gt;" in body
    row = body[body.index(f'data-session-id="{quiet.pk}"'):]
    assert '<span class="muted">—</span>' in row[: row.index("</tr>")]


@pytest.mark.django_db
def test_ids_and_counts_are_never_localised(moderator_client, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    conv = ConversationFactory(id=1234567, turn_count=0)
    conv.__class__.objects.filter(pk=conv.pk).update(turn_count=12345)
    body = moderator_client.get(URL).content.decode()
    assert 'data-session-id="1234567"' in body
    assert 'href="/conversations/1234567/"' in body
    assert '<td class="num">12345</td>' in body


@pytest.mark.django_db
def test_every_cell_is_escaped(moderator_client):
    ConversationFactory(
        external_id=HOSTILE, model_version=HOSTILE, user_role=HOSTILE, source=HOSTILE, app_version=HOSTILE,
        environment=HOSTILE[:16],
    )
    body = moderator_client.get(URL).content.decode()
    assert "<script>alert(1)" not in body
    row = body[body.index("data-session-id="):]
    row = row[: row.index("</tr>")]
    # id, app, model (its cell and its hover title), role, source
    assert row.count("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;") == 6


@pytest.mark.django_db
@pytest.mark.parametrize(("role_fixture", "selectable"), [("analyst", True), ("moderator", False)])
def test_bulk_tag_checkbox_only_for_those_who_may_tag(client, request, role_fixture, selectable):
    conv = ConversationFactory()
    client.force_login(request.getfixturevalue(role_fixture))
    body = client.get(URL).content.decode()
    checkbox = f'<input type="checkbox" class="row-select" name="ids" value="{conv.pk}" form="bulk-form"'
    assert (checkbox in body) is selectable
    assert f'<span class="session-tags" id="tags-{conv.pk}"></span>' in body
