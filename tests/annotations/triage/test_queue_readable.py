"""The queue a moderator can scan: sentence titles with snippets, age and SLA from the oldest feedback, one status
badge, human environment labels, near-duplicates offered for merging, and routing that hands the claim over."""

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotations.recall.text import feedback_event_text
from annotations.triage import actions, job, proposals, selectors
from annotations.triage.models import Cluster, ClusterProposal, ProposalStatus, Status
from tests.annotations.triage.helpers import around, centres, make_items

pytestmark = pytest.mark.django_db

JUNE = dt.datetime(2026, 6, 3, 9, 30, tzinfo=dt.UTC)
VISA = ["The visa fee quoted is out of date. It went up in April.", "Visa fee wrong, says 30 dollars.",
        "Fee for the Japan visa is 45 now", "Outdated visa fee"]


def _cluster(texts, *, seed=1, **kwargs) -> Cluster:
    make_items(around(centres(1, seed=seed)[0], len(texts), seed=seed), texts=texts, **kwargs)
    job.triage_run()
    return Cluster.objects.order_by("-id").first()


def test_age_and_sla_count_from_the_oldest_feedback_not_the_clustering(moderator):
    c = _cluster(VISA, occurred_at=JUNE)
    assert c.oldest_item_at == JUNE and c.created_at > JUNE
    # Newer feedback joining later does not make the cluster younger.
    make_items(around(centres(1, seed=1)[0], 2, seed=9), texts=["still wrong", "again"])
    job.triage_run()
    c.refresh_from_db()
    assert c.size == 6 and c.oldest_item_at == JUNE
    fresh = _cluster(["A brand new complaint about refunds."], seed=5)
    rows = {r.pk: r for r in selectors.queue(moderator, selectors.QueueFilters())}
    row = rows[c.pk]
    assert row.sla_breached and row.age.endswith("months") and int(row.age.split()[0]) >= 5
    assert row.oldest_text == "oldest feedback 2026-06-03 09:30 UTC"
    assert not rows[fresh.pk].sla_breached and rows[fresh.pk].age.endswith("minutes")
    assert [r.pk for r in selectors.queue(moderator, selectors.QueueFilters(sla_breached=True))] == [c.pk]


def test_merging_and_moving_keep_the_oldest_feedback(moderator):
    old = _cluster(VISA[:2], occurred_at=JUNE)
    new = _cluster(["Refund window wrong", "Refunds take 90 days, not 30"], seed=2)
    actions.clusters_merge(actor=moderator, cluster_ids=[old.pk], into_id=new.pk)
    new.refresh_from_db()
    assert new.oldest_item_at == JUNE
    moved = actions.members_move(actor=moderator, item_ids=list(new.members.filter(item_at=JUNE)
                                                                .values_list("item_id", flat=True)), to_cluster_id=None)
    new.refresh_from_db()
    assert moved.oldest_item_at == JUNE and new.oldest_item_at > JUNE


def test_the_queue_row_reads_as_a_sentence_with_keywords_and_snippets(client, moderator):
    c = _cluster(VISA, environment="prod")
    assert c.title == "The visa fee quoted is out of date." and "visa" in " ".join(c.terms)
    client.force_login(moderator)
    html = client.get(reverse("triage:queue")).content.decode()
    row = html[html.index(f'data-cluster-id="{c.pk}"'):]
    row = row[:row.index("</tr>")]
    assert "The visa fee quoted is out of date." in row and "visa" in row.split("cluster-terms")[1]
    samples = row.split('class="cluster-samples"')[1].split("</ul>")[0]
    assert samples.count("<li>") == 3 and "Visa fee wrong, says 30 dollars." in samples
    # One status badge, and the environment by its human label.
    assert row.count(">New<") == 1 and ">new<" not in row
    assert ">Production</span>" in row and ">prod<" not in row
    assert '<option value="prod">Production</option>' in html


def test_keywords_come_from_what_the_feedback_says_not_the_labels_of_its_text():
    texts = [feedback_event_text(kind_label="Thumbs down", rating=None, categories=[], text=comment, correction="",
                                 query="How much is the visa fee for Japan?", reply="The fee is 30 dollars.")
             for comment in ["The visa fee quoted is out of date.", "", "Japan visa costs 45 now", ""]]
    c = _cluster(texts)
    # The nearest member with words of its own gives the title, whichever of the two it is; the other and the bare
    # thumbs down (said once: the two are the same) are the snippets.
    said = ["The visa fee quoted is out of date.", "Japan visa costs 45 now"]
    assert c.title in said
    assert sorted(c.samples) == sorted([*set(said) - {c.title}, "Thumbs down on “How much is the visa fee for Japan?”"])
    words = {w for term in c.terms for w in term.split()}
    assert "visa" in words and not words & {"asked", "comment", "feedback", "reply", "user", "thumbs"}


def test_the_cluster_page_shows_age_from_the_oldest_feedback_and_labels(client, moderator):
    c = _cluster(VISA[:2], occurred_at=JUNE, environment="dev")
    client.force_login(moderator)
    html = client.get(reverse("triage:cluster", args=[c.pk])).content.decode()
    assert "(oldest feedback 2026-06-03 09:30)" in html and "past the SLA" in html
    assert ">Development</span>" in html and 'id="cluster-terms"' in html
    assert "Thumbs down · conversation" in html and "thumbs_down" not in html


def test_routing_hands_the_claim_to_the_assignee(moderator, expert, settings):
    c = _cluster(VISA[:2])
    actions.cluster_claim(actor=moderator, cluster_id=c.pk)
    actions.clusters_route(actor=moderator, cluster_ids=[c.pk], assignee_id=expert.pk)
    c.refresh_from_db()
    assert c.owner == expert and c.claimed_by == expert and actions.claim_is_active(c)
    assert c.claim_expires_at > timezone.now() + dt.timedelta(minutes=settings.TRIAGE_CLAIM_MINUTES - 1)
    # The expert works on it without being told someone else holds it.
    actions.cluster_claim(actor=expert, cluster_id=c.pk)
    # Routed to the group without an assignee, nobody's claim stays behind.
    other = _cluster(VISA[2:], seed=2)
    actions.cluster_claim(actor=moderator, cluster_id=other.pk)
    actions.clusters_route(actor=moderator, cluster_ids=[other.pk])
    other.refresh_from_db()
    assert other.claimed_by is None and other.status == Status.NEEDS_EXPERT


def _near_duplicates(settings) -> tuple[Cluster, Cluster, ClusterProposal]:
    centre = centres(1, seed=21)[0]
    make_items(around(centre, 3, seed=1), texts=VISA[:3])
    job.triage_run()
    settings.TRIAGE_ASSIGN_DISTANCE = 0.0  # created apart, as if the threshold had been stricter at the time
    make_items(around(centre, 2, seed=2), texts=["Visa fee is outdated", "Old visa price"])
    job.triage_run()
    assert proposals.triage_recluster().merges == 1
    large, small = Cluster.objects.order_by("-size")
    return large, small, ClusterProposal.objects.get(status=ProposalStatus.PENDING)


def test_near_duplicates_are_offered_on_the_queue_and_merge_in_one_click(client, moderator, expert, settings):
    large, small, proposal = _near_duplicates(settings)
    rows = {r.pk: r for r in selectors.queue(moderator, selectors.QueueFilters())}
    assert [(h.proposal_id, h.other_id, h.into_this) for h in rows[small.pk].merges] == [(proposal.pk, large.pk, False)]
    assert [(h.other_id, h.into_this, h.other_title) for h in rows[large.pk].merges] == [
        (small.pk, True, small.title)]
    client.force_login(moderator)
    html = client.get(reverse("triage:queue")).content.decode()
    assert f"Merge into #{large.pk}" in html and "Merge it into this one" in html
    page = client.get(reverse("triage:cluster", args=[small.pk])).content.decode()
    assert f"Merge #{small.pk} into #{large.pk}" in page and large.title in page
    response = client.post(reverse("triage:decide", args=[proposal.pk]),
                           {"decision": "accept", "next": "/triage/"}, follow=True)
    assert "Proposal accepted" in response.content.decode()
    small.refresh_from_db()
    assert small.duplicate_of_id == large.pk and not small.is_open
    assert all(not r.merges for r in selectors.queue(moderator, selectors.QueueFilters()))


def test_experts_are_not_offered_merges(moderator, expert, settings):
    large, small, _ = _near_duplicates(settings)
    actions.clusters_route(actor=moderator, cluster_ids=[large.pk, small.pk], assignee_id=expert.pk)
    assert [r.merges for r in selectors.queue(expert, selectors.QueueFilters())] == [[], []]


def test_a_merge_with_a_cluster_closed_since_is_not_offered(moderator, settings):
    large, small, proposal = _near_duplicates(settings)
    actions.cluster_set_status(actor=moderator, cluster_id=large.pk, status=Status.CLOSED, resolution="fixed")
    assert selectors.merge_hints([small.pk]) == {}
    assert selectors.cluster_page(moderator, small.pk).proposals == []


def test_the_migration_backfills_titles_snippets_and_the_oldest_feedback(moderator):
    c = _cluster(VISA, occurred_at=JUNE)
    Cluster.objects.filter(pk=c.pk).update(title="visa fee, outdated", samples=[], oldest_item_at=None)
    migration = importlib.import_module("annotations.triage.migrations.0008_cluster_samples_oldest_item")
    with connection.cursor() as cursor:
        cursor.execute(migration.OLDEST_SQL)
    with connection.schema_editor(atomic=False) as editor:
        migration.summarise(apps, editor)
    c.refresh_from_db()
    assert c.oldest_item_at == JUNE and c.title == "The visa fee quoted is out of date."
    nearest = [m.item.text for m in c.members.select_related("item").order_by("distance", "item_id")]
    assert nearest[0] == VISA[0] and c.samples == nearest[:3]  # the first is more than the title's sentence
