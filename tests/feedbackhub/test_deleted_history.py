"""A deleted comment's text, in its history, is for its author and admins only."""

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from annotations import services
from feedbackhub import roles
from sessions.models import TurnRole
from tests.annotations.conftest import make_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def reply_turn():
    conversation = make_conversation(replies=["The Eiffel Tower is in Berlin."])
    return conversation.turns.get(role=TurnRole.ASSISTANT)


def _history(client, user, annotation_id) -> str:
    client.force_login(user)
    response = client.get(reverse("annotations:annotation_history", args=[annotation_id]))
    assert response.status_code == 200
    return response.content.decode()


def test_deleted_comment_text_is_for_its_author_and_admins(client, moderator, expert, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="private remark")
    services.annotation_update(actor=moderator, annotation_id=a.pk, version=1, body="private remark, edited")
    r = services.reply_create(actor=expert, annotation_id=a.pk, body="expert reply text")
    services.reply_update(actor=expert, reply_id=r.pk, version=1, body="expert reply text, edited")
    no_role = User.objects.create_user("nobody")
    admin = User.objects.create_user("boss")
    admin.groups.add(Group.objects.get_or_create(name=roles.ADMIN)[0])

    # Before the delete everyone who may open the history reads it.
    assert "private remark" in _history(client, no_role, a.pk)

    a.refresh_from_db()
    services.annotation_delete(actor=moderator, annotation_id=a.pk, version=a.version)
    for reader in (no_role, expert):
        html = _history(client, reader, a.pk)
        assert "private remark" not in html
        assert "&quot;body&quot;: &quot;deleted&quot;" in html
    assert "private remark" in _history(client, moderator, a.pk)
    assert "private remark" in _history(client, admin, a.pk)
    # The replies of a deleted comment: their own authors and admins.
    assert "expert reply text" not in _history(client, no_role, a.pk)
    assert "expert reply text" in _history(client, expert, a.pk)
    assert "expert reply text" in _history(client, admin, a.pk)


def test_deleted_reply_text_is_for_its_author_and_admins(client, moderator, expert, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="visible comment")
    services.annotation_update(actor=moderator, annotation_id=a.pk, version=1, body="visible comment, edited")
    r = services.reply_create(actor=expert, annotation_id=a.pk, body="regretted reply")
    services.reply_delete(actor=expert, reply_id=r.pk)
    html = _history(client, moderator, a.pk)
    assert "visible comment" in html and "regretted reply" not in html
    assert "regretted reply" in _history(client, expert, a.pk)
