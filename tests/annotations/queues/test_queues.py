"""Review queues through their services and pages: building from a filter, handing out items with holds, complete
and skip, blind review, agreement on real rows, adjudication into gold annotations."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from annotations import services as review
from annotations.models import Annotation, AuditEvent, Correction, Score, Tag
from annotations.queues import selectors, services
from annotations.queues.models import QueueItem, Review, ReviewState
from annotations.queues.services import QueueSpec
from sessions.models import SavedView, TurnRole
from tests.annotations.conftest import span

pytestmark = pytest.mark.django_db


def make_queue(moderator, reviewers, rubric, *, k=2, **extra):
    spec = QueueSpec(name="Prod replies", query_string="environment=prod", reviews_per_item=k, rubric=rubric,
                     reviewers=reviewers, **extra)
    return services.queue_create(actor=moderator, spec=spec)


def complete(queue, reviewer, helpful, tone, *, h="4", t="good"):
    row = services.next_review(queue=queue, reviewer=reviewer)
    services.review_complete(queue=queue, item_id=row.item_id, reviewer=reviewer,
                             answers={helpful: h, tone: t})
    return row


def test_a_queue_from_a_list_filter_holds_the_matching_replies_in_list_order(
    moderator, reviewers, rubric, production_conversations
):
    queue = make_queue(moderator, reviewers, rubric)
    items = list(QueueItem.objects.filter(queue=queue).select_related("turn"))
    assert len(items) == 4
    assert [i.position for i in items] == [1, 2, 3, 4]
    assert {i.turn.role for i in items} == {TurnRole.ASSISTANT}
    newest_first = sorted(production_conversations, key=lambda c: (c.started_at is None, c.pk), reverse=False)
    assert {i.conversation_id for i in items} == {c.pk for c in newest_first}
    # Reading order within a conversation.
    first_conv = [i for i in items if i.conversation_id == items[0].conversation_id]
    assert [i.turn.position for i in first_conv] == sorted(i.turn.position for i in first_conv)


def test_last_reply_scope_saved_view_and_refusals(moderator, reviewers, rubric, production_conversations):
    last = make_queue(moderator, reviewers, rubric, reply_scope="last")
    assert QueueItem.objects.filter(queue=last).count() == 2
    view = SavedView.objects.create(name="Prod", slug="prod", owner=moderator, query_string="environment=prod")
    from_view = services.queue_create(actor=moderator, spec=QueueSpec(
        name="From a view", source_kind="saved_view", saved_view=view, reviewers=reviewers[:1]))
    assert QueueItem.objects.filter(queue=from_view).count() == 4
    with pytest.raises(ValidationError) as err:
        make_queue(moderator, reviewers, rubric, k=3)
    assert "reviewers" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        services.queue_create(actor=moderator, spec=QueueSpec(name="x", query_string="environment=nope",
                                                               reviewers=reviewers))
    assert "query_string" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        services.queue_create(actor=moderator, spec=QueueSpec(name="x", query_string="q=nothingmatchesthis",
                                                               reviewers=reviewers))
    assert "No model reply matches" in str(err.value)
    with pytest.raises(PermissionDenied):
        make_queue(reviewers[0].__class__.objects.create_user("nobody"), reviewers, rubric)


def test_live_queues_take_in_new_matches_once(moderator, reviewers, rubric, production_conversations):
    from tests.annotations.conftest import make_conversation

    queue = make_queue(moderator, reviewers, rubric, mode="live")
    c = make_conversation(replies=["A new prod reply."], external_id="prod-new")
    c.environment = "prod"
    c.save(update_fields=["environment"])
    assert services.live_queues_refresh() == 1
    assert services.live_queues_refresh() == 0
    assert QueueItem.objects.filter(queue=queue).count() == 5
    assert QueueItem.objects.filter(queue=queue, turn__conversation=c).get().position == 5


def test_next_item_holds_it_resumes_it_and_two_reviewers_get_different_items_with_k1(
    moderator, reviewers, rubric, production_conversations
):
    rev1, rev2 = reviewers
    queue = make_queue(moderator, reviewers, rubric, k=1)
    first = services.next_review(queue=queue, reviewer=rev1)
    assert first.item.position == 1 and first.state == ReviewState.IN_PROGRESS
    # Asking again gives the same held item (a reload does not take a second one).
    assert services.next_review(queue=queue, reviewer=rev1).pk == first.pk
    other = services.next_review(queue=queue, reviewer=rev2)
    assert other.item.position == 2
    # A hold that ran out is offered to others and released for its holder.
    Review.objects.filter(pk=first.pk).update(leased_until=timezone.now() - dt.timedelta(seconds=1))
    services.review_skip(queue=queue, item_id=other.item_id, reviewer=rev2)
    taken = services.next_review(queue=queue, reviewer=rev2)
    assert taken.item_id == first.item_id
    assert Review.objects.get(pk=first.pk).state == ReviewState.RELEASED


def test_k2_each_item_is_reviewed_by_two_people_and_never_twice_by_one(
    moderator, reviewers, rubric, production_conversations
):
    rev1, rev2 = reviewers
    helpful, tone = rubric
    queue = make_queue(moderator, reviewers, rubric, k=2)
    seen = {rev1.pk: [], rev2.pk: []}
    for _ in range(4):
        for reviewer in reviewers:
            seen[reviewer.pk].append(complete(queue, reviewer, helpful, tone).item_id)
    assert services.next_review(queue=queue, reviewer=rev1) is None
    assert sorted(seen[rev1.pk]) == sorted(seen[rev2.pk])
    assert len(set(seen[rev1.pk])) == 4
    assert set(QueueItem.objects.filter(queue=queue).values_list("done_count", flat=True)) == {2}
    progress = selectors.queue_progress(queue)
    assert (progress.items, progress.complete, progress.reviews_done, progress.percent) == (4, 4, 8, 100)
    assert [(p.username, p.done) for p in progress.reviewers] == [("rev1", 4), ("rev2", 4)]
    with pytest.raises(ValidationError):  # completing the same item again
        services.review_complete(queue=queue, item_id=seen[rev1.pk][0], reviewer=rev1,
                                 answers={helpful: "1", tone: "rude"})


def test_completing_needs_every_rubric_field_with_a_valid_value(moderator, reviewers, rubric,
                                                                production_conversations):
    helpful, tone = rubric
    queue = make_queue(moderator, reviewers, rubric)
    row = services.next_review(queue=queue, reviewer=reviewers[0])
    for answers, field in (({tone: "good"}, helpful), ({helpful: "9", tone: "good"}, helpful),
                           ({helpful: "2.5", tone: "good"}, helpful), ({helpful: "3", tone: "meh"}, tone)):
        with pytest.raises(ValidationError) as err:
            services.review_complete(queue=queue, item_id=row.item_id, reviewer=reviewers[0], answers=answers)
        assert review.field_name(field) in err.value.message_dict
    assert not Score.objects.exists()
    assert Review.objects.get(pk=row.pk).state == ReviewState.IN_PROGRESS


def test_blind_reviewers_see_only_their_own_work_until_they_complete(
    client, moderator, reviewers, rubric, production_conversations
):
    rev1, rev2 = reviewers
    helpful, tone = rubric
    queue = make_queue(moderator, reviewers, rubric, k=2)
    row = services.next_review(queue=queue, reviewer=rev1)
    turn = row.item.turn
    mine = review.annotation_create(actor=rev1, turn=turn, body="rev1 sees a problem", **span(turn, "Reply"))
    services.review_complete(queue=queue, item_id=row.item_id, reviewer=rev1, answers={helpful: "2", tone: "rude"})
    # rev2 has not completed it: rev1's comment and scores are hidden from them everywhere.
    client.force_login(rev2)
    page = client.get(reverse("annotations:review", args=[turn.conversation_id])).content.decode()
    assert "rev1 sees a problem" not in page and "Blind review" in page
    assert client.get(reverse("annotations:card", args=[mine.pk])).status_code == 404
    assert client.get(reverse("annotations:annotation_history", args=[mine.pk])).status_code == 404
    work = client.get(reverse("queues:next", args=[queue.pk])).content.decode()
    assert "rev1 sees a problem" not in work and 'id="rubric-form"' in work
    # The moderator is no reviewer of the queue: sees everything, with the scores.
    client.force_login(moderator)
    page = client.get(reverse("annotations:review", args=[turn.conversation_id])).content.decode()
    assert "rev1 sees a problem" in page and "Helpfulness v1" in page
    # Once rev2 completes the item, they see rev1's work.
    services.review_complete(queue=queue, item_id=row.item_id, reviewer=rev2, answers={helpful: "2", tone: "rude"})
    client.force_login(rev2)
    page = client.get(reverse("annotations:review", args=[turn.conversation_id])).content.decode()
    assert "rev1 sees a problem" in page


def test_agreement_report_on_stored_reviews(moderator, reviewers, rubric, production_conversations):
    rev1, rev2 = reviewers
    helpful, tone = rubric
    queue = make_queue(moderator, reviewers, rubric, k=2)
    factual = Tag.objects.get(slug="factually-incorrect")
    # rev1: helpfulness 4 4 2 2, tone good good rude rude; rev2: 4 3 2 2, good good rude neutral.
    values = {rev1: [("4", "good"), ("4", "good"), ("2", "rude"), ("2", "rude")],
              rev2: [("4", "good"), ("3", "good"), ("2", "rude"), ("2", "neutral")]}
    for index in range(4):
        for reviewer in reviewers:
            row = services.next_review(queue=queue, reviewer=reviewer)
            turn = row.item.turn
            if index == 0:  # both highlight the same word with the same tag: exact match
                review.annotation_create(actor=reviewer, turn=turn, tag_ids=[factual.pk], **span(turn, "fine"))
            if index == 1 and reviewer == rev1:  # only rev1 tags this one
                review.annotation_create(actor=reviewer, turn=turn, tag_ids=[factual.pk], **span(turn, "wrong"))
            h, t = values[reviewer][index]
            services.review_complete(queue=queue, item_id=row.item_id, reviewer=reviewer, answers={helpful: h, tone: t})
    report = selectors.agreement_report(queue)
    fields = {f["key"]: f for f in report["fields"]}
    from annotations.queues.agreement import krippendorff_alpha

    assert fields["helpfulness"]["alpha"] == pytest.approx(
        krippendorff_alpha([[4, 4, 2, 2], [4, 3, 2, 2]], "interval"), abs=1e-4)
    # tone as option indexes: good 0, neutral 1, rude 2.
    assert fields["tone"]["alpha"] == pytest.approx(krippendorff_alpha([[0, 0, 2, 2], [0, 0, 2, 1]], "nominal"),
                                                    abs=1e-4)
    assert fields["tone"]["items"] == 4
    (tag_row,) = report["tags"]
    assert tag_row["tag"] == factual.name
    assert tag_row["alpha"] == pytest.approx(krippendorff_alpha([[1, 1, 0, 0], [1, 0, 0, 0]], "nominal"), abs=1e-4)
    (pair,) = report["pairs"]
    assert pair["items"] == 4 and pair["reviewers"] == ["rev1", "rev2"]
    assert pair["kappa"]["tone"]["kappa"] is not None and "helpfulness" not in pair["kappa"]
    # Spans: one exact match, rev1 one more: exact F1 = 2 * 1 / 3.
    assert report["spans"]["exact_f1"] == pytest.approx(2 / 3, abs=1e-4)
    # Items where they disagree: 2 (helpfulness), 4 (tone); item 2 also on the tag.
    to_adjudicate = selectors.items_to_adjudicate(queue)
    assert sorted(r.item.position for r in to_adjudicate) == [2, 4]


def test_adjudication_makes_gold_annotations_and_scores_and_is_audited(
    client, moderator, expert, reviewers, rubric, production_conversations
):
    rev1, rev2 = reviewers
    helpful, tone = rubric
    queue = make_queue(moderator, reviewers, rubric, k=2)
    row = services.next_review(queue=queue, reviewer=rev1)
    turn = row.item.turn
    comment = review.annotation_create(actor=rev1, turn=turn, body="Not fine", **span(turn, "fine"))
    edit = review.annotation_create(actor=rev1, turn=turn, kind="suggestion", replacement="good",
                                    **span(turn, "fine"))
    services.review_complete(queue=queue, item_id=row.item_id, reviewer=rev1, answers={helpful: "2", tone: "rude"})
    with pytest.raises(ValidationError):  # one review of two: not yet
        services.adjudicate(actor=expert, queue=queue, item_id=row.item_id, annotation_ids=[], answers={})
    row2 = services.next_review(queue=queue, reviewer=rev2)
    assert row2.item_id == row.item_id
    services.review_complete(queue=queue, item_id=row.item_id, reviewer=rev2, answers={helpful: "4", tone: "good"})
    with pytest.raises(PermissionDenied):
        services.adjudicate(actor=rev2, queue=queue, item_id=row.item_id, annotation_ids=[], answers={})

    client.force_login(expert)
    url = reverse("queues:adjudicate", args=[queue.pk, row.item_id])
    page = client.get(url).content.decode()
    assert "Not fine" in page and "rev1" in page and "rev2" in page
    response = client.post(url, {"annotations": [comment.pk, edit.pk], review.field_name(helpful): "3",
                                 review.field_name(tone): "neutral", "note": "rev1 saw it right"})
    assert response.status_code == 302
    gold = Annotation.objects.filter(turn=turn, is_gold=True, author=expert)
    assert sorted(gold.values_list("kind", flat=True)) == ["comment", "suggestion"]
    assert Correction.objects.get(turn=turn).text == turn.content.replace("fine", "good")
    assert {s.config.key: s.display for s in Score.objects.filter(turn=turn, is_gold=True)} == {
        "helpfulness": "3", "tone": "neutral"}
    item = QueueItem.objects.get(pk=row.item_id)
    assert item.adjudicated_by == expert
    event = AuditEvent.objects.get(action="adjudicate")
    assert event.after["chosen"] == [comment.pk, edit.pk] and event.after["note"] == "rev1 saw it right"
    assert sorted(event.before["annotations"]) == sorted([comment.pk, edit.pk])
    assert selectors.items_to_adjudicate(queue) == []
    # The gold annotation and scores show on the review page.
    page = client.get(reverse("annotations:review", args=[turn.conversation_id])).content.decode()
    assert "badge-gold" in page and "neutral" in page


def test_pages_work_for_the_people_they_are_for(client, moderator, analyst, reviewers, rubric,
                                                production_conversations):
    helpful, tone = rubric
    client.force_login(moderator)
    form = client.get(reverse("queues:new") + "?from=environment%3Dprod").content.decode()
    assert "environment=prod" in form
    response = client.post(reverse("queues:new"), {
        "name": "From the form", "source_kind": "filter", "query_string": "environment=prod", "reply_scope": "all",
        "mode": "snapshot", "reviews_per_item": "2", "rubric": [helpful.pk, tone.pk],
        "reviewers": [r.pk for r in reviewers], "lease_minutes": "30", "adjudication_threshold": "1",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    queue = services.ReviewQueue.objects.get(name="From the form")
    assert client.get(queue.get_absolute_url()).status_code == 200
    agreement = client.get(reverse("queues:agreement", args=[queue.pk]))
    assert agreement.status_code == 200 and agreement.json()["queue"] == queue.pk
    bad = client.post(reverse("queues:new"), {"name": "x", "source_kind": "filter", "query_string": "environment=no",
                                             "reply_scope": "all", "mode": "snapshot", "reviews_per_item": "1",
                                             "lease_minutes": "30", "adjudication_threshold": "1"})
    assert bad.status_code == 400
    client.force_login(reviewers[0])
    mine = client.get(reverse("queues:list")).content.decode()
    assert "From the form" in mine and "Start" in mine
    work = client.get(reverse("queues:next", args=[queue.pk]))
    assert work.status_code == 200 and b"Complete and next" in work.content
    item = Review.objects.get(reviewer=reviewers[0]).item
    url = reverse("queues:complete", args=[queue.pk, item.pk])
    invalid = client.post(url, {review.field_name(helpful): "7", review.field_name(tone): "good"})
    assert invalid.status_code == 400 and b"between 1 and 5" in invalid.content
    done = client.post(url, {review.field_name(helpful): "5", review.field_name(tone): "good"})
    assert done.status_code == 302 and done.url == reverse("queues:next", args=[queue.pk])
    skip = client.post(reverse("queues:skip", args=[queue.pk, services.next_review(
        queue=queue, reviewer=reviewers[0]).item_id]))
    assert skip.status_code == 302
    client.force_login(analyst)
    assert client.get(reverse("queues:new")).status_code == 403
    assert client.get(reverse("queues:next", args=[queue.pk])).status_code == 403
    assert client.get(reverse("queues:agreement", args=[queue.pk])).status_code == 403


def test_score_configs_are_versioned_when_their_definition_changes(moderator, reviewers, rubric,
                                                                   production_conversations):
    helpful, tone = rubric
    make_queue(moderator, reviewers, rubric, k=1)
    same = review.score_config_save(actor=moderator, key="helpfulness", name="Helpfulness", kind="numeric",
                                    minimum=1, maximum=5, step=1)
    assert same.pk == helpful.pk
    wider = review.score_config_save(actor=moderator, key="helpfulness", name="Helpfulness", kind="numeric",
                                     minimum=1, maximum=10, step=1)
    assert wider.version == 2 and wider.is_current
    helpful.refresh_from_db()
    assert not helpful.is_current
    with pytest.raises(ValidationError):
        review.score_config_save(actor=moderator, key="bad", name="Bad", kind="categorical", options=["one"])


def test_scores_reach_the_list_filter_insights_and_dataset_exports(client, moderator, analyst, expert, reviewers,
                                                                    rubric, production_conversations):
    import csv
    import io

    from annotations.curation import exporters
    from annotations.curation import services as curation
    from annotations.curation.models import Dataset
    from annotations.insights import charts
    from annotations.insights import selectors as insights

    helpful, tone = rubric
    queue = make_queue(moderator, reviewers, rubric, k=1)
    low = complete(queue, reviewers[0], helpful, tone, h="1", t="rude")
    complete(queue, reviewers[0], helpful, tone, h="5", t="good")
    low_conversation = low.item.conversation_id

    client.force_login(analyst)
    listed = client.get(reverse("conversations:list"), {"score": "helpfulness<=2"}).content.decode()
    assert f"/review/c/{low_conversation}/" in listed or f"/conversations/{low_conversation}/" in listed
    others = {c.pk for c in production_conversations} - {low_conversation}
    assert all(f"/conversations/{pk}/" not in listed for pk in others)
    rude = client.get(reverse("conversations:list"), {"score": "tone=rude"}).content.decode()
    assert f"/conversations/{low_conversation}/" in rude
    bad = client.get(reverse("conversations:list"), {"score": "tone<rude"})
    assert "compare it with = only" in bad.content.decode()

    from sessions.models import Conversation

    Conversation.objects.update(started_at=timezone.now())
    today = timezone.now().date()
    data = insights.dashboard(insights.DashboardFilters(date_from=today - dt.timedelta(days=30), date_to=today))
    chart = next(c for c in charts.all_charts(data) if c.id == "rubric-scores")
    assert [s.label for s in chart.series] == ["Helpfulness"]
    assert chart.series[0].data == [3.0]  # (1 + 5) / 2

    dataset = Dataset.objects.create(name="Scored", slug="scored", created_by=expert)
    turn = low.item.turn
    review.correction_save(actor=expert, turn=turn, text="Better.", rationale="r", version=None)
    correction = turn.correction
    from feedbackhub import roles
    from tests.conftest import _user

    other = _user("expert3", roles.DOMAIN_EXPERT)
    review.correction_approve(actor=other, correction_id=correction.pk, version=correction.version)
    curation.examples_add(actor=moderator, dataset=dataset, correction_ids=[correction.pk])
    example = dataset.examples.get()
    curation.example_review(actor=other, example_id=example.pk, decision="approve", notes="ok")
    out = io.BytesIO()
    exporters.write(exporters.get("csv"), exporters.ExportSource(dataset=dataset), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"))))
    assert '"helpfulness":{"gold":null,"name":"Helpfulness","reviewers":{"rev1":"1"}' in rows[0]["rubric_scores"]


def test_the_next_items_are_rendered_ahead_so_opening_one_renders_no_reply(
    client, moderator, reviewers, rubric, production_conversations, monkeypatch
):
    from annotations import selectors as review_selectors
    from annotations.queues import prefetch

    helpful, tone = rubric
    reviewer = reviewers[0]
    queue = make_queue(moderator, reviewers, rubric, k=1)
    client.force_login(reviewer)
    url = reverse("queues:next", args=[queue.pk])

    def open_and_complete() -> QueueItem:
        assert client.get(url).status_code == 200
        row = Review.objects.select_related("item").get(reviewer=reviewer, state=ReviewState.IN_PROGRESS)
        services.review_complete(queue=queue, item_id=row.item_id, reviewer=reviewer,
                                 answers={helpful: "3", tone: "good"})
        return row.item

    first = open_and_complete()  # item 1: its conversation (items 1 and 2) is rendered by this request
    # What the worker does meanwhile: the next two items (2 and 3) rendered ahead; item 3 is another conversation.
    assert prefetch.warm_upcoming(queue.pk, reviewer.pk) == 2

    def not_again(ids):
        raise AssertionError(f"turns {ids} were rendered in the request")

    monkeypatch.setattr(review_selectors, "turns_full", not_again)
    second = open_and_complete()
    third = open_and_complete()
    assert second.conversation_id == first.conversation_id != third.conversation_id
    assert third.position == 3


def test_an_archived_queue_hands_out_nothing_and_blinds_nobody(client, moderator, analyst, reviewers, rubric,
                                                               production_conversations):
    queue = make_queue(moderator, reviewers, rubric, k=2)
    row = services.next_review(queue=queue, reviewer=reviewers[0])
    assert selectors.blind_turns(reviewers[0], [row.item.conversation_id])
    client.force_login(moderator)
    assert client.post(reverse("queues:archive", args=[queue.pk]), {"archived": "1"}).status_code == 302
    assert not selectors.blind_turns(reviewers[0], [row.item.conversation_id])
    assert [m.queue for m in selectors.my_queues(reviewers[0])] == []
    client.force_login(reviewers[0])
    assert client.get(reverse("queues:next", args=[queue.pk])).status_code == 404
    client.force_login(analyst)
    assert client.post(reverse("queues:archive", args=[queue.pk]), {"archived": "0"}).status_code == 403


def test_similar_past_cases_leave_out_replies_the_viewer_reviews_blind(moderator, reviewers, rubric,
                                                                      production_conversations):
    from types import SimpleNamespace

    from annotations.recall.cases import visible_to

    rev1, rev2 = reviewers
    queue = make_queue(moderator, reviewers, rubric, k=2)
    first = QueueItem.objects.get(queue=queue, position=1)
    other = QueueItem.objects.get(queue=queue, position=3)
    similar = [SimpleNamespace(item=SimpleNamespace(turn_id=i.turn_id, conversation_id=i.conversation_id))
               for i in (first, other)]
    # rev2 is a reviewer of the queue and has completed neither reply: a past case on them would show rev1's work.
    assert visible_to(rev2, similar) == []
    assert visible_to(moderator, similar) == similar  # not a reviewer of the queue
    helpful, tone = rubric
    for reviewer in reviewers:
        row = services.next_review(queue=queue, reviewer=reviewer)
        services.review_complete(queue=queue, item_id=row.item_id, reviewer=reviewer,
                                 answers={helpful: "3", tone: "good"})
    assert [s.item.turn_id for s in visible_to(rev2, similar)] == [first.turn_id]


@pytest.mark.django_db(transaction=True)
def test_two_next_item_requests_of_one_reviewer_at_once_take_one_hold(moderator, reviewers, rubric,
                                                                      production_conversations):
    import threading

    from django.db import connection

    queue = make_queue(moderator, reviewers, rubric, k=1)
    barrier = threading.Barrier(2)
    taken = []

    def ask() -> None:
        try:
            barrier.wait()
            taken.append(services.next_review(queue=queue, reviewer=reviewers[0]).item_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 2 and taken[0] == taken[1]
    assert Review.objects.filter(reviewer=reviewers[0], state=ReviewState.IN_PROGRESS).count() == 1


def test_completing_an_item_whose_hold_was_taken_over_says_so_and_goes_on(client, moderator, reviewers, rubric,
                                                                          production_conversations):
    helpful, tone = rubric
    rev1, rev2 = reviewers
    queue = make_queue(moderator, reviewers, rubric, k=1)
    mine = services.next_review(queue=queue, reviewer=rev1)
    Review.objects.filter(pk=mine.pk).update(leased_until=timezone.now() - dt.timedelta(minutes=1))
    theirs = services.next_review(queue=queue, reviewer=rev2)  # the hold ran out: the item goes to rev2
    assert theirs.item_id == mine.item_id
    services.review_complete(queue=queue, item_id=theirs.item_id, reviewer=rev2, answers={helpful: "2", tone: "good"})

    client.force_login(rev1)
    response = client.post(reverse("queues:complete", args=[queue.pk, mine.item_id]),
                           {review.field_name(helpful): "5", review.field_name(tone): "good"}, follow=True)
    assert response.redirect_chain[0] == (reverse("queues:next", args=[queue.pk]), 302)
    assert "others completed it meanwhile" in response.content.decode()
    assert not Score.objects.filter(author=rev1).exists()
