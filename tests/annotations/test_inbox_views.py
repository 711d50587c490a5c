"""The inbox's HTTP side: the polled count (one query), the @ lookup (JSON, 400 naming the field), the page and its
marks scoped to the recipient (404 for anyone else's item), and mentions drawn as chips in escaped comment text."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations import services as review
from annotations.inbox.models import Notification
from tests.annotations.conftest import span
from tests.annotations.test_inbox import make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ann(db):
    return make_user("ann", "domain_expert")


@pytest.fixture
def mentioned(moderator, ann, reply_turn) -> Notification:
    review.annotation_create(actor=moderator, turn=reply_turn, body="@ann <b>Berlin</b>?", **span(reply_turn, "Berlin"))
    return Notification.objects.get(recipient=ann)


def test_the_count_is_one_query_and_every_page_polls_it(client, ann, mentioned, django_assert_num_queries):
    client.force_login(ann)
    page = client.get(reverse("conversations:list")).content.decode()
    assert 'id="inbox-nav"' in page and 'hx-trigger="load, every 15s"' in page and "?seen=" in page
    client.get(reverse("inbox:count"))
    with django_assert_num_queries(2):  # the user (with roles), the count
        body = client.get(reverse("inbox:count"), **HTMX).content.decode()
    assert 'class="inbox-count">1<' in body and 'aria-label="Inbox, 1 unread"' in body
    assert 'hx-trigger="every 15s"' in body and "?seen=1" in body
    # The page shows that count already: nothing to swap.
    assert client.get(reverse("inbox:count"), {"seen": "1"}, **HTMX).status_code == 204
    assert client.get(reverse("inbox:count"), {"seen": "0"}, **HTMX).status_code == 200
    assert client.get(reverse("inbox:count"), {"seen": "x"}, **HTMX).status_code == 200


def test_a_logged_out_page_stops_polling_instead_of_swapping_in_the_login_page(client):
    assert client.get(reverse("inbox:count"), **HTMX).status_code == 286


def test_user_lookup_matches_prefixes_of_active_users_but_not_oneself(client, ann):
    make_user("annabel", first_name="Annabel")
    make_user("anna-gone", active=False)
    make_user("zed", last_name="Anders")
    client.force_login(ann)
    found = client.get(reverse("inbox:users"), {"q": "an"}).json()["users"]
    assert [u["username"] for u in found] == ["annabel", "zed"]
    assert client.get(reverse("inbox:users"), {"q": "x" * 151}).status_code == 400
    assert "q" in client.get(reverse("inbox:users"), {"q": "x" * 151}).json()["errors"]


def test_the_page_lists_ones_own_items_with_a_link_to_open_them(client, ann, moderator, mentioned):
    client.force_login(moderator)
    assert "<b>Berlin" not in client.get(reverse("inbox:page")).content.decode()
    assert client.get(reverse("inbox:open", args=[mentioned.pk])).status_code == 404
    client.force_login(ann)
    page = client.get(reverse("inbox:page")).content.decode()
    assert "mod mentioned you on" in page and "&lt;b&gt;Berlin&lt;/b&gt;" in page
    assert '<span class="mention is-me" title="Mentions ann">@ann</span>' in page
    bad = client.get(reverse("inbox:page"), {"page": "x"})
    assert bad.status_code == 400 and 'role="alert"><li>page: ' in bad.content.decode()
    response = client.get(reverse("inbox:open", args=[mentioned.pk]))
    assert response.status_code == 302 and response["Location"] == mentioned.url
    mentioned.refresh_from_db()
    assert mentioned.read_at is not None


def test_marking_read_is_for_the_recipient_only(client, ann, moderator, mentioned):
    client.force_login(moderator)
    assert client.post(reverse("inbox:read", args=[mentioned.pk]), **HTMX).status_code == 404
    client.post(reverse("inbox:read_all"), **HTMX)
    mentioned.refresh_from_db()
    assert mentioned.read_at is None
    client.force_login(ann)
    body = client.post(reverse("inbox:read", args=[mentioned.pk]), **HTMX).content.decode()
    assert f'id="item-{mentioned.pk}"' in body and "Mark unread" in body
    assert 'id="inbox-nav"' in body and 'hx-swap-oob="true"' in body and 'aria-label="Inbox"' in body
    assert client.post(reverse("inbox:read", args=[mentioned.pk]), {"unread": "1"}).status_code == 302
    mentioned.refresh_from_db()
    assert mentioned.read_at is None
    client.post(reverse("inbox:read_all"))
    mentioned.refresh_from_db()
    assert mentioned.read_at is not None


def test_a_mention_is_a_chip_in_the_escaped_comment_and_unknown_names_stay_text(client, ann, moderator, reply_turn):
    a = review.annotation_create(
        actor=moderator, turn=reply_turn, body="@ann and @nobody: <i>x</i>\nnext", **span(reply_turn, "Berlin")
    )
    review.reply_create(actor=ann, annotation_id=a.pk, body="thanks @mod")
    client.force_login(moderator)
    page = client.get(reverse("annotations:review", args=[reply_turn.conversation_id])).content.decode()
    assert '<span class="mention" title="Mentions ann">@ann</span> and @nobody: &lt;i&gt;x&lt;/i&gt;<br>next' in page
    assert '<span class="mention is-me" title="Mentions mod">@mod</span>' in page
    assert 'src="/static/js/mentions.js"' in page
