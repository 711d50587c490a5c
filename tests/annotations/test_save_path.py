"""The annotation save (edit view): a fixed number of queries, and the card it returns shows the saved tags."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Annotation, Tag
from tests.annotations.conftest import span

pytestmark = pytest.mark.django_db


@pytest.fixture
def tagged(expert, reply_turn) -> Annotation:
    tag = Tag.objects.filter(is_active=True).order_by("pk").first()
    return services.annotation_create(actor=expert, turn=reply_turn, body="Wrong city.", tag_ids=[tag.pk],
                                      **span(reply_turn, "Berlin"))


def _save(client, annotation: Annotation, **data):
    url = reverse("annotations:annotation_edit", args=[annotation.pk])
    return client.post(url, {"version": Annotation.objects.get(pk=annotation.pk).version, **data})


def test_save_runs_a_fixed_number_of_queries(client, expert, tagged, django_assert_num_queries):
    client.force_login(expert)
    _save(client, tagged, body="warm-up")
    version = Annotation.objects.get(pk=tagged.pk).version
    url = reverse("annotations:annotation_edit", args=[tagged.pk])
    # User (with their roles; the session comes from Redis); savepoint, the annotation locked with its tag ids and
    # its thread, update, audit event, release; then the taxonomy for the card (from the cache outside a test's
    # transaction). Neither the tags nor the thread are read again, and the feedback item is synced by a worker, not
    # in the request.
    with django_assert_num_queries(7):
        response = client.post(url, {"version": version, "body": "Wrong city: it is in Paris."})
    assert response.status_code == 200
    assert "Wrong city: it is in Paris." in response.content.decode()


def test_a_save_of_an_annotation_with_replies_renders_the_card_a_full_read_would(
    client, expert, moderator, tagged, django_assert_num_queries
):
    """The thread comes with the locked row (as JSON): the card a save returns is the very card the page renders from
    a full read, for every kind of reply the viewer can see, and no query is added for it."""
    from django.core.cache import cache

    services.reply_create(actor=moderator, annotation_id=tagged.pk, body="Agreed, Paris.\nSee <b>the map</b>.")
    mine = services.reply_create(actor=expert, annotation_id=tagged.pk, body="Thanks — noted ✅")
    gone = services.reply_create(actor=expert, annotation_id=tagged.pk, body="A typo.")
    services.reply_delete(actor=expert, reply_id=gone.pk)
    theirs_gone = services.reply_create(actor=moderator, annotation_id=tagged.pk, body="Never mind.")
    services.reply_delete(actor=moderator, reply_id=theirs_gone.pk)
    client.force_login(expert)
    _save(client, tagged, body="warm-up")
    version = Annotation.objects.get(pk=tagged.pk).version
    url = reverse("annotations:annotation_edit", args=[tagged.pk])
    with django_assert_num_queries(7):
        saved = client.post(url, {"version": version, "body": "Wrong city."}).content.decode()
    cache.clear()  # the save stored its card: read the annotation in full and render it again
    full = client.get(reverse("annotations:card", args=[tagged.pk])).content.decode()
    assert saved == full
    assert "Agreed, Paris.<br>See &lt;b&gt;the map&lt;/b&gt;." in saved
    assert f'id="reply-{mine.pk}"' in saved and f'name="version" value="{mine.version}"' in saved
    assert f'id="reply-{gone.pk}" class="deleted-note"' in saved and "Never mind." not in saved


def test_a_save_sends_the_feedback_item_sync_to_a_worker(client, expert, tagged, django_capture_on_commit_callbacks):
    from annotations.recall.tasks import sync_feedback

    client.force_login(expert)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _save(client, tagged, body="Wrong city: it is in Paris.")
    sent = [c.args for c in callbacks if getattr(c, "args", None)]
    assert (sync_feedback, {"annotation_id": tagged.pk}) in sent  # coalesced: outbox.enqueue_once_on_commit


def test_card_after_a_save_shows_the_tags_just_saved(client, expert, tagged):
    client.force_login(expert)
    old = tagged.tags.get()
    new = Tag.objects.filter(is_active=True).exclude(pk=old.pk).order_by("pk").first()
    retagged = _save(client, tagged, body="Retagged.", tags_present="1", tags=[str(new.pk)]).content.decode()
    assert f'data-tags="{new.pk}"' in retagged and f'<li class="chip tag-c-{new.pk}">' in retagged
    assert f"tag-c-{old.pk}" not in retagged
    unchanged = _save(client, tagged, body="Same tags.").content.decode()
    assert f'data-tags="{new.pk}"' in unchanged and f"tag-c-{old.pk}" not in unchanged
