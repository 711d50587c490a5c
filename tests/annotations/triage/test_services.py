import datetime as dt

import numpy as np
import psycopg
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from annotations.models import Annotation, Tag
from annotations.triage import actions, job, job_sql, proposals, selectors
from annotations.triage.models import (
    Cluster,
    ClusterMember,
    ClusterProposal,
    Cursor,
    ProposalStatus,
    Resolution,
    Status,
)
from tests.annotations.triage.helpers import (
    around,
    blob_vectors,
    centres,
    current_partition,
    expected_priority,
    make_items,
)
from tests.integration.worker import database_url

pytestmark = pytest.mark.django_db


def _clusters():
    return list(Cluster.objects.order_by("id"))


def test_run_groups_new_items_and_is_idempotent():
    vectors, labels = blob_vectors(3, 6)
    items = make_items(vectors, texts=[f"refund window wrong {i}" if labels[i] == 0 else f"rude tone {i}"
                                       if labels[i] == 1 else f"broken link {i}" for i in range(len(labels))])
    result = job.triage_run()
    assert (result.items, result.new_clusters, result.assigned) == (18, 3, 0)
    expected = {frozenset(it.pk for it, lab in zip(items, labels, strict=True) if lab == k) for k in range(3)}
    assert current_partition() == expected
    sizes = sorted(c.size for c in _clusters())
    assert sizes == [6, 6, 6]
    c = Cluster.objects.get(members__item=items[0])
    # The title is the member nearest the centroid, as a sentence; the keywords are its terms.
    nearest = ClusterMember.objects.filter(cluster=c).order_by("distance", "item_id").first().item.text
    assert c.title == nearest[0].upper() + nearest[1:] and "refund" in c.terms
    # Snippets: the next nearest members (the nearest one is the title already).
    after = [m.item.text for m in ClusterMember.objects.filter(cluster=c).order_by("distance", "item_id")[1:4]]
    assert c.samples == after
    assert len(c.representative_ids) == 3 and set(c.representative_ids) <= {it.pk for it in items[:6]}
    assert c.environments == ["prod"] and c.model_versions == ["gpt-test-1"]
    assert c.growth_24h == 6 and c.negative_count == 6
    assert c.priority == expected_priority(size=6, growth_24h=6, max_severity=0, negative_count=6)
    again = job.triage_run()
    assert again.items == 0 and Cluster.objects.count() == 3


def test_new_items_join_the_nearest_open_cluster_and_identities_stay():
    cs = centres(2, seed=5)
    first = make_items(around(cs[0], 5, seed=1))
    job.triage_run()
    cluster = Cluster.objects.get()
    later = make_items(around(cs[0], 4, seed=2))
    elsewhere = make_items(around(cs[1], 3, seed=3))
    result = job.triage_run()
    assert result.assigned == 4 and result.new_clusters == 1
    cluster.refresh_from_db()
    assert cluster.size == 9
    assert set(ClusterMember.objects.filter(cluster=cluster).values_list("item_id", flat=True)) == {
        i.pk for i in first + later}
    assert Cluster.objects.exclude(pk=cluster.pk).get().size == len(elsewhere)
    centroid = np.asarray(cluster.centroid)
    assert abs(np.linalg.norm(centroid) - 1) < 1e-4


def test_closed_clusters_take_no_new_items(moderator):
    cs = centres(1, seed=6)
    make_items(around(cs[0], 3, seed=1))
    job.triage_run()
    old = Cluster.objects.get()
    actions.cluster_set_status(actor=moderator, cluster_id=old.pk, status=Status.CLOSED, resolution=Resolution.FIXED)
    make_items(around(cs[0], 2, seed=2))
    job.triage_run()
    assert Cluster.objects.count() == 2
    assert Cluster.objects.get(pk=old.pk).size == 3


def test_only_negative_items_with_a_current_vector_are_clustered():
    cs = centres(1, seed=7)
    make_items(around(cs[0], 2, seed=1), is_negative=False)
    assert job.triage_run().items == 0


def test_a_second_run_while_one_holds_the_lock_does_nothing():
    vectors, _ = blob_vectors(1, 3)
    make_items(vectors)
    with psycopg.connect(database_url(), autocommit=True) as other:
        # Another session holds the lock (as a running job would); rows made in this test's transaction are
        # invisible to it, which does not matter for the lock.
        other.execute("SELECT pg_advisory_lock(%s)", [job_sql.LOCK_KEY])
        result = job.triage_run()
        other.execute("SELECT pg_advisory_unlock(%s)", [job_sql.LOCK_KEY])
    assert result.locked_out and result.items == 0
    assert ClusterMember.objects.count() == 0
    assert job.triage_run().items == 3


def test_batches_give_the_same_clusters_as_one_run(settings):
    vectors, _ = blob_vectors(4, 5, seed=11)
    make_items(vectors)
    job.triage_run()
    one_go = current_partition()
    ClusterMember.objects.all().delete()
    Cluster.objects.all().delete()
    Cursor.objects.all().delete()
    settings.TRIAGE_BATCH_SIZE = 7
    assert job.triage_run(max_batches=1).items == 7
    result = job.triage_run()
    assert result.batches == 2
    batched = current_partition()
    # Blobs are far apart: the first batch's clusters absorb their later members.
    assert batched == one_go


def test_growth_is_recounted_as_items_age():
    cs = centres(1, seed=8)
    old = timezone.now() - dt.timedelta(hours=30)
    make_items(around(cs[0], 2, seed=1), occurred_at=old)
    make_items(around(cs[0], 3, seed=2))
    job.triage_run()
    c = Cluster.objects.get()
    assert (c.size, c.growth_24h) == (5, 3)
    job.triage_run(now=timezone.now() + dt.timedelta(hours=25))
    c.refresh_from_db()
    assert c.growth_24h == 0
    assert c.priority == expected_priority(size=5, growth_24h=0, max_severity=0, negative_count=5)


def test_priority_formula():
    assert expected_priority(size=0, growth_24h=0, max_severity=0, negative_count=0) == 0
    small_fresh = expected_priority(size=10, growth_24h=10, max_severity=0, negative_count=10)
    big_old = expected_priority(size=100, growth_24h=0, max_severity=0, negative_count=100)
    assert small_fresh > big_old
    assert expected_priority(size=5, growth_24h=0, max_severity=4, negative_count=5) > expected_priority(
        size=5, growth_24h=0, max_severity=1, negative_count=5)


def _one_cluster(n=3, seed=1):
    make_items(around(centres(1, seed=seed)[0], n, seed=seed))
    job.triage_run()
    return Cluster.objects.order_by("-id").first()


def test_claim_locks_for_others_until_it_expires(moderator, moderator2, settings):
    c = _one_cluster()
    claimed = actions.cluster_claim(actor=moderator, cluster_id=c.pk)
    assert claimed.status == Status.TRIAGING and claimed.owner == moderator
    with pytest.raises(ValidationError, match="Claimed by mod"):
        actions.cluster_claim(actor=moderator2, cluster_id=c.pk)
    Cluster.objects.filter(pk=c.pk).update(claim_expires_at=timezone.now() - dt.timedelta(seconds=1))
    again = actions.cluster_claim(actor=moderator2, cluster_id=c.pk)
    assert again.claimed_by == moderator2 and again.owner == moderator


def test_closing_needs_a_resolution_and_reopening_clears_it(moderator):
    c = _one_cluster()
    with pytest.raises(ValidationError, match="resolution"):
        actions.cluster_set_status(actor=moderator, cluster_id=c.pk, status=Status.CLOSED)
    closed = actions.cluster_set_status(actor=moderator, cluster_id=c.pk, status=Status.CLOSED,
                                         resolution=Resolution.WONT_FIX)
    assert not closed.is_open and closed.resolution == Resolution.WONT_FIX
    reopened = actions.cluster_set_status(actor=moderator, cluster_id=c.pk, status=Status.TRIAGING)
    assert reopened.is_open and reopened.resolution == ""


def test_routing_shows_a_cluster_to_experts(moderator, expert, analyst):
    c = _one_cluster()
    other = _one_cluster(seed=2)
    assert selectors.cluster_page(expert, c.pk) is None
    with pytest.raises(PermissionDenied):
        actions.cluster_claim(actor=expert, cluster_id=c.pk)
    actions.clusters_route(actor=moderator, cluster_ids=[c.pk], assignee_id=expert.pk)
    c.refresh_from_db()
    assert c.status == Status.NEEDS_EXPERT and c.routed_group.name == "domain_expert" and c.owner == expert
    assert [x.pk for x in selectors.queue(expert, selectors.QueueFilters())] == [c.pk]
    assert {x.pk for x in selectors.queue(moderator, selectors.QueueFilters())} == {c.pk, other.pk}
    assert selectors.queue(analyst, selectors.QueueFilters()) == []
    actions.cluster_set_guidance(actor=expert, cluster_id=c.pk, guidance="Refunds are 30 days; cite policy 4.2.")
    actions.cluster_set_status(actor=expert, cluster_id=c.pk, status=Status.CORRECTED)
    with pytest.raises(PermissionDenied):
        actions.clusters_route(actor=expert, cluster_ids=[other.pk])


def test_guidance_for_items(moderator):
    c = _one_cluster()
    ids = list(ClusterMember.objects.filter(cluster=c).values_list("item_id", flat=True))
    assert selectors.guidance_for_items(ids) == {}
    actions.cluster_set_guidance(actor=moderator, cluster_id=c.pk, guidance="Say 30 days.")
    assert selectors.guidance_for_items([*ids, 999999]) == dict.fromkeys(ids, "Say 30 days.")


def test_recall_api_returns_cluster_guidance_once(moderator):
    from annotations.recall.api import GUIDANCE_PROVIDERS
    from annotations.recall.cases import Case
    from annotations.recall.models import FeedbackItem

    assert selectors.recall_guidance in GUIDANCE_PROVIDERS
    c = _one_cluster()
    actions.cluster_set_guidance(actor=moderator, cluster_id=c.pk, guidance="Say 30 days.")
    items = FeedbackItem.objects.filter(pk__in=ClusterMember.objects.filter(cluster=c).values("item_id"))
    cases = [Case(item=item, similarity=0.9 - i / 10) for i, item in enumerate(items)]
    notes = selectors.recall_guidance(cases[:1], cases[1:])
    assert [(n["kind"], n["text"], n["turn_id"]) for n in notes] == [
        ("cluster_guidance", "Say 30 days.", cases[0].item.turn_id)
    ]


def test_merge_moves_members_and_closes_the_other_as_duplicate(moderator):
    a = _one_cluster(3, seed=1)
    b = _one_cluster(2, seed=2)
    target = actions.clusters_merge(actor=moderator, cluster_ids=[a.pk, b.pk], into_id=a.pk)
    assert target.size == 5
    b.refresh_from_db()
    assert (b.status, b.resolution, b.duplicate_of_id, b.is_open, b.size) == (
        Status.CLOSED, Resolution.DUPLICATE, a.pk, False, 0)
    assert ClusterMember.objects.filter(cluster=a).count() == 5
    with pytest.raises(ValidationError):
        actions.clusters_merge(actor=moderator, cluster_ids=[a.pk], into_id=a.pk)


def test_split_out_and_move_items(moderator):
    a = _one_cluster(4, seed=1)
    b = _one_cluster(2, seed=2)
    ids = sorted(ClusterMember.objects.filter(cluster=a).values_list("item_id", flat=True))
    new = actions.members_move(actor=moderator, item_ids=ids[:2], to_cluster_id=None)
    assert new.size == 2 and new.pk not in (a.pk, b.pk)
    a.refresh_from_db()
    assert a.size == 2
    actions.members_move(actor=moderator, item_ids=ids[2:], to_cluster_id=b.pk)
    a.refresh_from_db()
    b.refresh_from_db()
    assert b.size == 4 and a.size == 0 and a.status == Status.CLOSED


def test_tag_members_annotates_each_reply_once_and_is_not_reclustered(moderator):
    c = _one_cluster(3)
    tag = Tag.objects.get_or_create(slug="factually-incorrect", defaults={"name": "Factually incorrect",
                                                                         "severity": 3})[0]
    assert actions.cluster_tag_members(actor=moderator, cluster_id=c.pk, tag_id=tag.pk) == 3
    assert actions.cluster_tag_members(actor=moderator, cluster_id=c.pk, tag_id=tag.pk) == 0
    annotations = Annotation.objects.filter(author=moderator, tags=tag)
    assert annotations.count() == 3
    c.refresh_from_db()
    assert tag.pk in c.tag_ids and c.max_severity == tag.severity
    # The review services created recall items for them (on commit); they are not new triage work.
    from annotations.recall.services import feedback_item_sync_for_annotation

    for a in annotations:
        feedback_item_sync_for_annotation(annotation_id=a.pk)
    assert job._pending(100).item_ids == []


def test_recluster_proposes_merges_and_accepting_merges(moderator, settings):
    cs = centres(1, seed=21)
    make_items(around(cs[0], 3, seed=1))
    job.triage_run()
    # A second group close to the first, but created apart (as if the threshold had been stricter at the time).
    settings.TRIAGE_ASSIGN_DISTANCE = 0.0
    make_items(around(cs[0], 2, seed=2))
    job.triage_run()
    assert Cluster.objects.count() == 2
    result = proposals.triage_recluster()
    assert result.merges == 1
    proposal = ClusterProposal.objects.get(status=ProposalStatus.PENDING)
    assert proposals.triage_recluster().merges == 0  # no duplicate proposal
    proposals.proposal_decide(actor=moderator, proposal_id=proposal.pk, accept=True)
    assert Cluster.objects.filter(is_open=True).count() == 1
    assert Cluster.objects.get(is_open=True).size == 5


def test_recluster_proposes_a_split_of_two_distinct_groups(moderator):
    cs = centres(2, seed=31)
    vectors = np.concatenate([around(cs[0], 6, seed=1), around(cs[1], 5, seed=2)])
    make_items(vectors)
    job.triage_run()
    assert Cluster.objects.count() == 2
    # Put everything in one cluster by hand, then let the re-cluster notice.
    a, b = _clusters()
    actions.clusters_merge(actor=moderator, cluster_ids=[a.pk, b.pk], into_id=a.pk)
    result = proposals.triage_recluster()
    assert result.splits == 1
    p = ClusterProposal.objects.get(kind="split", status=ProposalStatus.PENDING)
    assert len(p.item_ids) == 5
    proposals.proposal_decide(actor=moderator, proposal_id=p.pk, accept=True)
    assert sorted(Cluster.objects.filter(is_open=True).values_list("size", flat=True)) == [5, 6]


def test_queue_filters(moderator):
    a = _one_cluster(3, seed=1)
    b = _one_cluster(2, seed=2)
    # Clustered just now, but its oldest feedback is five days old: that is what the SLA counts from.
    Cluster.objects.filter(pk=b.pk).update(environments=["dev"], oldest_item_at=timezone.now() - dt.timedelta(days=5))
    Cluster.objects.filter(pk=a.pk).update(created_at=timezone.now() - dt.timedelta(days=5))
    actions.clusters_assign(actor=moderator, cluster_ids=[a.pk], owner_id=moderator.pk)
    f = selectors.QueueFilters
    assert [c.pk for c in selectors.queue(moderator, f())] == [a.pk, b.pk]
    assert [c.pk for c in selectors.queue(moderator, f(environment="dev"))] == [b.pk]
    assert [c.pk for c in selectors.queue(moderator, f(owner="me"))] == [a.pk]
    assert [c.pk for c in selectors.queue(moderator, f(owner="none"))] == [b.pk]
    assert [c.pk for c in selectors.queue(moderator, f(sla_breached=True))] == [b.pk]
    assert [c.pk for c in selectors.queue(moderator, f(status="triaging"))] == []
    rows = selectors.queue(moderator, f())
    assert rows[0].status_label == "New" and rows[0].is_fast_growing
    assert (rows[1].age, rows[1].sla_breached, rows[0].sla_breached) == ("5 days", True, False)


def test_changed_stamp_moves_when_clusters_change(moderator):
    c = _one_cluster()
    before = selectors.changed_stamp()
    actions.cluster_claim(actor=moderator, cluster_id=c.pk)
    assert selectors.changed_stamp() != before
    assert connection.in_atomic_block


def test_the_cursor_skips_old_vectors_until_a_full_scan(settings, monkeypatch):
    monkeypatch.setattr(job, "CURSOR_MARGIN", 0)
    cs = centres(1, seed=81)
    make_items(around(cs[0], 3, seed=1))
    job.triage_run()
    # Items whose vectors are older than the cursor (e.g. re-activated) are left to the full scan.
    late = make_items(around(cs[0], 2, seed=2), is_negative=False)
    from annotations.recall.models import FeedbackItem

    Cursor.objects.update(value=10**12)
    FeedbackItem.objects.filter(pk__in=[i.pk for i in late]).update(is_negative=True)
    assert job.triage_run().items == 0
    assert job.triage_run(full_scan=True).items == 2
