"""Mentions and the inbox: parsing, one item per kind and recipient, nobody told of their own doing, and only the
recipient sees or marks an item."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError

from annotations import services as review
from annotations.curation import services as curation
from annotations.inbox import mentions, selectors
from annotations.inbox import services as inbox
from annotations.inbox.models import Notification, NotificationKind
from annotations.triage import actions
from annotations.triage.job import zero_vector
from annotations.triage.models import Cluster
from feedbackhub import roles
from tests.annotations.conftest import span

pytestmark = pytest.mark.django_db


def make_user(username: str, *role_names: str, active: bool = True, **fields) -> User:
    user = User.objects.create_user(username=username, password="pw-for-tests-only", is_active=active, **fields)
    for name in role_names:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def ann(db) -> User:
    return make_user("ann", roles.DOMAIN_EXPERT)


@pytest.fixture
def bob(db) -> User:
    return make_user("bob.smith", roles.MODERATOR)


def items(user: User, kind: str | None = None) -> list[Notification]:
    rows = Notification.objects.filter(recipient=user)
    return list(rows.filter(kind=kind) if kind else rows)


# --- parsing ---------------------------------------------------------------------------------------------------------


def test_mentions_are_found_at_word_starts_and_not_in_email_addresses(ann, bob):
    make_user("gone", active=False)
    text = "Ask @ann and @bob.smith. Mail ann@example.com, not @nobody or @gone; (@ann)"
    assert mentions.candidates(text) >= {"ann", "bob.smith", "bob.smith.", "nobody", "gone"}
    assert "example.com" not in mentions.candidates(text)
    assert mentions.mentioned(text) == {"ann", "bob.smith"}


def test_split_keeps_the_text_and_cuts_out_known_mentions():
    text = "Hi @ann. See @bob.smith, and @unknown.\nBye @ann"
    parts = mentions.split(text, {"ann", "bob.smith"})
    assert "".join(p.text for p in parts) == text
    assert [p.username for p in parts if p.username] == ["ann", "bob.smith", "ann"]
    assert [p.text for p in parts if p.username] == ["@ann", "@bob.smith", "@ann"]
    assert mentions.split("no mention here", {"ann"}) == [mentions.Part("no mention here")]


def test_a_username_with_a_trailing_dot_wins_over_the_sentence_stop():
    assert [p.username for p in mentions.split("ping @dot.", {"dot", "dot."}) if p.username] == ["dot."]


# --- notifications per kind ------------------------------------------------------------------------------------------


def test_a_mention_in_a_comment_notifies_the_mentioned_user_once_and_not_the_author(moderator, ann, reply_turn):
    a = review.annotation_create(
        actor=moderator, turn=reply_turn, body="@ann @ann is this right? cc @mod", **span(reply_turn, "Berlin")
    )
    [item] = items(ann)
    assert item.kind == NotificationKind.MENTION and item.actor == moderator and item.annotation_id == a.pk
    assert item.url == f"/review/c/{a.conversation_id}/#card-{a.pk}"
    assert item.subject == "Where is the Eiffel Tower?" and "is this right?" in item.excerpt
    assert items(moderator) == []


def test_editing_a_comment_notifies_only_the_users_it_adds(moderator, ann, bob, reply_turn):
    a = review.annotation_create(actor=moderator, turn=reply_turn, body="@ann look", **span(reply_turn, "Berlin"))
    review.annotation_update(actor=moderator, annotation_id=a.pk, version=a.version, body="@ann and @bob.smith look")
    assert len(items(ann)) == 1
    assert [i.kind for i in items(bob)] == [NotificationKind.MENTION]


def test_a_reply_notifies_the_thread_and_a_mention_once(moderator, expert, ann, bob, reply_turn):
    a = review.annotation_create(actor=moderator, turn=reply_turn, body="Wrong city", **span(reply_turn, "Berlin"))
    review.reply_create(actor=expert, annotation_id=a.pk, body="Agreed.")
    assert [i.kind for i in items(moderator)] == [NotificationKind.REPLY]
    assert items(expert) == []  # one's own reply
    reply = review.reply_create(actor=bob, annotation_id=a.pk, body="@mod @ann it is Paris")
    # The thread's author is mentioned: one item, a mention; the earlier replier is told of the reply.
    assert [i.kind for i in items(moderator)] == [NotificationKind.MENTION, NotificationKind.REPLY]
    assert [i.kind for i in items(expert)] == [NotificationKind.REPLY]
    assert [(i.kind, i.reply_id) for i in items(ann)] == [(NotificationKind.MENTION, reply.pk)]
    assert items(bob) == []


def test_editing_a_reply_tells_new_mentions_and_not_the_thread_again(moderator, expert, ann, reply_turn):
    a = review.annotation_create(actor=moderator, turn=reply_turn, body="Wrong city", **span(reply_turn, "Berlin"))
    reply = review.reply_create(actor=expert, annotation_id=a.pk, body="Agreed.")
    review.reply_update(actor=expert, reply_id=reply.pk, version=reply.version, body="Agreed, @ann?")
    assert len(items(moderator)) == 1
    assert [i.kind for i in items(ann)] == [NotificationKind.MENTION]


def test_a_cluster_routed_to_a_person_or_a_group(moderator, expert, ann):
    cluster = Cluster.objects.create(title="Refund window wrong", centroid=zero_vector(), vector_sum=zero_vector())
    actions.clusters_route(actor=moderator, cluster_ids=[cluster.pk], assignee_id=ann.pk)
    [item] = items(ann)
    assert item.kind == NotificationKind.ROUTED and item.url == f"/triage/c/{cluster.pk}/"
    assert item.object_id == cluster.pk and item.subject == "Refund window wrong"
    assert items(expert) == []
    other = Cluster.objects.create(title="Visa", centroid=zero_vector(), vector_sum=zero_vector())
    actions.clusters_route(actor=moderator, cluster_ids=[other.pk])
    assert {i.recipient_id for i in Notification.objects.filter(object_id=other.pk)} == {ann.pk, expert.pk}
    assert items(moderator) == []


def test_routing_to_oneself_tells_nobody(expert):
    router = make_user("both", roles.MODERATOR, roles.DOMAIN_EXPERT)
    cluster = Cluster.objects.create(title="T", centroid=zero_vector(), vector_sum=zero_vector())
    actions.clusters_route(actor=router, cluster_ids=[cluster.pk], assignee_id=router.pk)
    assert Notification.objects.count() == 0


def test_proposed_examples_await_the_experts_who_did_not_write_their_correction(moderator, expert, ann, reply_turn):
    other_turn = reply_turn.conversation.turns.filter(role="assistant").order_by("-position").first()
    mine = review.correction_save(actor=expert, turn=reply_turn, text="In Paris.", rationale="")
    mine = review.correction_approve(actor=ann, correction_id=mine.pk, version=mine.version)  # four-eyes
    theirs = review.correction_save(actor=ann, turn=other_turn, text="Fine.", rationale="")
    theirs = review.correction_approve(actor=expert, correction_id=theirs.pk, version=theirs.version)
    dataset = curation.dataset_create(actor=expert, name="Geo")
    curation.examples_add(actor=moderator, dataset=dataset, correction_ids=[mine.pk, theirs.pk])
    examples = dict(dataset.examples.values_list("correction_id", "pk"))
    [for_expert] = items(expert)
    assert for_expert.kind == NotificationKind.APPROVAL and for_expert.object_id == examples[theirs.pk]
    assert for_expert.subject == "1 example proposed for Geo"
    assert for_expert.url.endswith(f"?status=proposed&after={examples[theirs.pk] - 1}#example-{examples[theirs.pk]}")
    [for_ann] = items(ann)
    assert for_ann.object_id == examples[mine.pk] and for_ann.subject == "1 example proposed for Geo"
    assert items(moderator) == []


def test_several_proposed_examples_are_one_item(moderator, expert, ann, reply_turn):
    other_turn = reply_turn.conversation.turns.filter(role="assistant").order_by("-position").first()
    ids = []
    for turn in (reply_turn, other_turn):
        c = review.correction_save(actor=expert, turn=turn, text="Fixed.", rationale="")
        ids.append(review.correction_approve(actor=ann, correction_id=c.pk, version=c.version).pk)  # four-eyes
    dataset = curation.dataset_create(actor=expert, name="Geo")
    curation.examples_add(actor=expert, dataset=dataset, correction_ids=ids)
    [item] = items(ann)
    assert item.subject == "2 examples proposed for Geo" and item.object_id == dataset.examples.order_by("pk")[0].pk
    assert items(expert) == []


# --- the recipient's own -------------------------------------------------------------------------------------------


def test_only_the_recipient_reads_or_marks_an_item(moderator, ann, bob, reply_turn):
    review.annotation_create(actor=moderator, turn=reply_turn, body="@ann see", **span(reply_turn, "Berlin"))
    [item] = items(ann)
    assert selectors.unread_count(ann) == 1 and selectors.unread_count(bob) == 0
    assert selectors.inbox_page(bob).items == []
    with pytest.raises(ValidationError):
        inbox.notification_read(actor=bob, notification_id=item.pk)
    assert inbox.notifications_read_all(actor=bob) == 0
    item.refresh_from_db()
    assert item.read_at is None
    inbox.notification_read(actor=ann, notification_id=item.pk)
    assert selectors.unread_count(ann) == 0
    inbox.notification_read(actor=ann, notification_id=item.pk, read=False)
    assert selectors.unread_count(ann) == 1


def test_the_inbox_lists_unread_items_first_then_newest(moderator, ann, reply_turn):
    created = [
        review.annotation_create(actor=moderator, turn=reply_turn, body=f"@ann note {n}", **span(reply_turn, "Berlin"))
        for n in range(3)
    ]
    first = Notification.objects.get(annotation=created[0])
    last = Notification.objects.get(annotation=created[2])
    inbox.notification_read(actor=ann, notification_id=last.pk)
    page = selectors.inbox_page(ann)
    assert [i.annotation_id for i in page.items] == [created[1].pk, created[0].pk, created[2].pk]
    assert page.unread == 2 and not page.has_next
    assert inbox.notifications_read_all(actor=ann) == 2
    assert selectors.inbox_page(ann, size=2).has_next
    assert first.pk in [i.pk for i in selectors.inbox_page(ann, page=2, size=2).items]
