"""Review views: query count, permissions (403), conflicts (409), validation (400), live changes, escaping."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Annotation, Tag
from sessions.models import TurnRole
from tests.annotations.conftest import make_conversation, span

pytestmark = pytest.mark.django_db


def assistant(conversation):
    return list(conversation.turns.filter(role=TurnRole.ASSISTANT).order_by("position"))


def test_fifty_turns_with_two_hundred_annotations_render_in_a_fixed_number_of_queries(
    client, moderator, expert, django_assert_num_queries
):
    rng = random.Random(7)
    replies = [f"Reply number {i}: the answer is {i * 7} and the source is document {i}." for i in range(25)]
    conversation = make_conversation(replies=replies)  # 25 user + 25 assistant turns = 50 turns
    turns = assistant(conversation)
    tags = list(Tag.objects.all())
    for n in range(200):
        turn = turns[n % len(turns)]
        quote = rng.choice(["the answer", "source", "document", "Reply number"])
        a = services.annotation_create(
            actor=moderator if n % 2 else expert, turn=turn, body=f"note {n}", tag_ids=[tags[n % len(tags)].pk],
            **span(turn, quote),
        )
        if n % 5 == 0:
            services.reply_create(actor=expert, annotation_id=a.pk, body=f"reply {n}")
        if n % 40 == 0:
            s = services.annotation_create(
                actor=moderator, turn=turn, kind="suggestion", replacement="an answer", **span(turn, "the answer")
            )
            services.suggestion_decide(actor=expert, annotation_id=s.pk, version=1, accept=True)
    client.force_login(expert)
    url = reverse("annotations:review", args=[conversation.pk])
    # First view, nothing cached but the session (in Redis): user (with groups); conversation, tags, turns
    # (+corrections), annotation rows (+author names); then the cards' annotations (+authors, tag ids) and their
    # replies; the turns' context; the review queues' blind rule (annotations.visibility) and the rubric scores.
    with django_assert_num_queries(10):
        cold = client.get(url)
    # Again: every card and turn comes from the cache, the three rendering queries are gone.
    with django_assert_num_queries(7):
        warm = client.get(url)
    assert cold.status_code == warm.status_code == 200
    assert cold.content.decode().count('<article class="card') == Annotation.objects.count()

    def workspace(response) -> str:  # the page minus the per-response CSRF token
        html = response.content.decode()
        return html[html.index('<div class="review"') : html.index('<div id="sel-toolbar"')]

    assert workspace(warm) == workspace(cold)


def test_analyst_reads_but_cannot_write(client, analyst, moderator, conversation, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="x")
    client.force_login(analyst)
    page = client.get(reverse("annotations:review", args=[conversation.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-action="comment"' not in html and "Read only" in html
    create = client.post(reverse("annotations:annotation_create", args=[reply_turn.pk]), {"body": "hi"})
    assert create.status_code == 403
    status = client.post(reverse("annotations:annotation_status", args=[a.pk]), {"version": 1, "resolved": "1"})
    assert status.status_code == 403
    reply = client.post(reverse("annotations:reply_create", args=[a.pk]), {"body": "me too"})
    assert reply.status_code == 403
    assert Annotation.objects.count() == 1 and not a.replies.exists()


def test_only_the_author_edits_or_deletes(client, moderator, expert, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="mine")
    client.force_login(expert)
    edit = client.post(reverse("annotations:annotation_edit", args=[a.pk]), {"version": 1, "body": "theirs"})
    delete = client.post(reverse("annotations:annotation_delete", args=[a.pk]), {"version": 1})
    assert (edit.status_code, delete.status_code) == (403, 403)
    a.refresh_from_db()
    assert a.body == "mine" and a.deleted_at is None


def test_only_domain_experts_accept_suggestions_and_approve_corrections(client, moderator, expert, second_expert,
                                                                        reply_turn):
    s = services.annotation_create(
        actor=moderator, turn=reply_turn, kind="suggestion", replacement="Paris", **span(reply_turn, "Berlin")
    )
    client.force_login(moderator)
    decide = client.post(reverse("annotations:annotation_decide", args=[s.pk]), {"version": 1, "accept": "1"})
    assert decide.status_code == 403
    save = client.post(reverse("annotations:correction_save", args=[reply_turn.pk]), {"text": "x", "version": ""})
    assert save.status_code == 403
    correction = services.correction_save(actor=second_expert, turn=reply_turn, text="Paris.")
    approve = client.post(reverse("annotations:correction_approve", args=[correction.pk]),
                          {"version": correction.version})
    assert approve.status_code == 403
    client.force_login(expert)
    approve = client.post(reverse("annotations:correction_approve", args=[correction.pk]),
                          {"version": correction.version})
    assert approve.status_code == 200 and "Approved" in approve.content.decode()


def test_stale_save_answers_409_with_both_texts_and_overwrites_nothing(client, moderator, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="theirs <b>bold</b>")
    services.annotation_update(actor=moderator, annotation_id=a.pk, version=1, body="theirs v2")
    client.force_login(moderator)
    response = client.post(reverse("annotations:annotation_edit", args=[a.pk]), {"version": 1, "body": "mine"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "theirs v2" in html and "mine" in html and 'name="version" value="2"' in html
    a.refresh_from_db()
    assert a.body == "theirs v2"


def test_invalid_selector_answers_400_naming_the_field(client, moderator, reply_turn):
    client.force_login(moderator)
    bad = {**span(reply_turn, "Berlin"), "exact": "Bonn", "body": "x"}
    response = client.post(reverse("annotations:annotation_create", args=[reply_turn.pk]), bad)
    assert response.status_code == 400 and "exact:" in response.content.decode()
    response = client.post(reverse("annotations:annotation_create", args=[reply_turn.pk]),
                           {**span(reply_turn, "Berlin"), "start": "abc", "body": "x"})
    assert response.status_code == 400 and "start:" in response.content.decode()
    assert not Annotation.objects.exists()


def test_changes_since_is_204_until_something_changes(client, moderator, expert, conversation, reply_turn):
    client.force_login(expert)
    page = client.get(reverse("annotations:review", args=[conversation.pk]))
    stamp = page.content.decode().split('data-stamp="', 1)[1].split('"', 1)[0]
    url = reverse("annotations:changes", args=[conversation.pk])
    assert client.get(url, {"since": stamp}).status_code == 204
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="new one")
    response = client.get(url, {"since": stamp})
    assert response.status_code == 200 and f'id="card-{a.pk}"' in response.content.decode()
    later = (a.updated_at + dt.timedelta(seconds=10)).isoformat()
    assert client.get(url, {"since": later}).status_code == 204


def test_page_reanchors_after_the_reply_text_changed(client, moderator, conversation, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="x", **span(reply_turn, "1889"))
    gone = services.annotation_create(actor=moderator, turn=reply_turn, body="y", **span(reply_turn, "Berlin"))
    reply_turn.content = "Intro. " + reply_turn.content.replace("Berlin", "Paris")
    reply_turn.save()
    client.force_login(moderator)
    html = client.get(reverse("annotations:review", args=[conversation.pk])).content.decode()
    a.refresh_from_db()
    gone.refresh_from_db()
    assert reply_turn.content[a.start : a.end] == "1889"
    assert gone.anchor_state == "orphaned"
    orphans = html.split('id="orphan-cards"', 1)[1]
    assert f'id="card-{gone.pk}"' in orphans and f'id="card-{a.pk}"' not in orphans


def test_everything_is_escaped(client, moderator, expert):
    conversation = make_conversation(replies=["<script>alert(1)</script> & <img src=x onerror=alert(2)>"])
    turn = assistant(conversation)[0]
    tag = Tag.objects.create(name="<b>tag</b>", slug="b-tag", colour="#000000")
    services.annotation_create(actor=moderator, turn=turn, body="<i>c</i>", tag_ids=[tag.pk],
                               **span(turn, "<script>"))
    client.force_login(expert)
    html = client.get(reverse("annotations:review", args=[conversation.pk])).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>tag</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;i&gt;c&lt;/i&gt;" in html


def test_reply_text_keeps_carriage_returns_and_stays_escaped(client, moderator):
    conversation = make_conversation(replies=["a\r\n<b>b</b>\rc"])
    client.force_login(moderator)
    html = client.get(reverse("annotations:review", args=[conversation.pk])).content.decode()
    assert "data-reply-text>a&#13;\n&lt;b&gt;b&lt;/b&gt;&#13;c</div>" in html


def test_tag_stylesheet_only_carries_valid_colours(client, expert):
    Tag.objects.create(name="evil", slug="evil", colour="#1;}a{b")  # bypassing the form's validator
    client.force_login(expert)
    css = client.get(reverse("annotations:tags_css")).content.decode()
    assert "--tag-colour:#e5484d" in css and "a{" not in css


def test_deleted_reply_offers_undo_to_its_author_only(client, moderator, expert, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="x")
    r = services.reply_create(actor=expert, annotation_id=a.pk, body="oops <b>")
    client.force_login(expert)
    card = client.post(reverse("annotations:reply_delete", args=[r.pk])).content.decode()
    assert "Your reply was deleted." in card and "oops" not in card
    card = client.post(reverse("annotations:reply_delete", args=[r.pk]), {"undo": "1"}).content.decode()
    assert "oops &lt;b&gt;" in card
    services.reply_delete(actor=expert, reply_id=r.pk)
    client.force_login(moderator)
    card = client.get(reverse("annotations:card", args=[a.pk])).content.decode()
    assert "oops" not in card and "deleted" not in card


def test_history_shows_who_did_what_with_before_and_after(client, moderator, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="first <i>")
    services.annotation_update(actor=moderator, annotation_id=a.pk, version=1, body="second")
    client.force_login(moderator)
    html = client.get(reverse("annotations:annotation_history", args=[a.pk])).content.decode()
    assert html.count("<li>") == 2 and "mod</strong> create" in html and "mod</strong> edit" in html
    assert "&quot;body&quot;: &quot;first &lt;i&gt;&quot;" in html and "&quot;body&quot;: &quot;second&quot;" in html


def test_cached_fragments_follow_every_change(client, moderator, expert, conversation, reply_turn):
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="first", **span(reply_turn, "Berlin"))
    s = services.annotation_create(
        actor=moderator, turn=reply_turn, kind="suggestion", replacement="Paris", **span(reply_turn, "Berlin")
    )
    client.force_login(expert)
    url = reverse("annotations:review", args=[conversation.pk])
    assert "first" in client.get(url).content.decode()  # now cached
    services.reply_create(actor=moderator, annotation_id=a.pk, body="a reply by someone else")
    services.annotation_update(actor=moderator, annotation_id=a.pk, version=1, body="edited")
    services.suggestion_decide(actor=expert, annotation_id=s.pk, version=1, accept=True)
    services.annotation_create(
        actor=moderator, turn=reply_turn, kind="suggestion", replacement="three hundred", **span(reply_turn, "330")
    )
    html = client.get(url).content.decode()
    assert "a reply by someone else" in html and "edited" in html and ">first<" not in html
    assert "The Eiffel Tower is in Paris." in html  # the corrected reply under the turn
    assert 'data-action="accept"' in html and "Write a corrected reply" in html  # expert controls (2nd reply)
    client.force_login(moderator)  # another viewer with other permissions gets their own fragments
    html = client.get(url).content.decode()
    assert 'data-action="accept"' not in html and "Write a corrected reply" not in html


def test_the_cached_workspace_follows_a_renamed_tag_and_a_deleted_annotation(client, moderator, reply_turn):
    tag = Tag.objects.filter(is_active=True).order_by("pk").first()
    a = services.annotation_create(actor=moderator, turn=reply_turn, body="keep", tag_ids=[tag.pk],
                                   **span(reply_turn, "Berlin"))
    gone = services.annotation_create(actor=moderator, turn=reply_turn, body="to be deleted")
    client.force_login(moderator)
    url = reverse("annotations:review", args=[reply_turn.conversation_id])
    assert client.get(url).content.decode().count('<article class="card') == 2  # now cached as a whole
    Tag.objects.filter(pk=tag.pk).update(name="Renamed tag")
    services.annotation_delete(actor=moderator, annotation_id=gone.pk, version=gone.version)
    html = client.get(url).content.decode()
    assert f'<li class="chip tag-c-{tag.pk}">Renamed tag</li>' in html
    assert html.count('<article class="card') == 1 and f'id="card-{a.pk}"' in html


@pytest.mark.parametrize("post", [
    {"body": "x", "start": "¹", "end": "3"},
    {"body": "x", "tags": ["2²"]},
    {"body": "x", "kind": "<script>"},
    {"body": "x", "start": "-1", "end": "3"},
])
def test_malformed_parameters_are_a_400_naming_the_field_not_a_500(client, expert, post):
    conversation = make_conversation(replies=["The answer is 42."])
    turn = assistant(conversation)[0]
    client.force_login(expert)
    response = client.post(reverse("annotations:annotation_create", args=[turn.pk]), post)
    assert response.status_code == 400
    field = next(k for k in post if k != "body")
    assert f"{field}:" in response.content.decode()
    assert not Annotation.objects.exists()


def test_a_version_that_is_not_a_number_is_a_400(client, expert):
    conversation = make_conversation(replies=["The answer is 42."])
    turn = assistant(conversation)[0]
    a = services.annotation_create(actor=expert, turn=turn, body="note")
    client.force_login(expert)
    response = client.post(reverse("annotations:annotation_status", args=[a.pk]), {"version": "1.5", "resolved": "1"})
    assert response.status_code == 400 and "version:" in response.content.decode()
