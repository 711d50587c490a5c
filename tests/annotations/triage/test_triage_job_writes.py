"""The clustering job's set-based writes: growth moving with time, representatives, where/tags/severity, priority."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from annotations.models import Tag
from annotations.triage import actions, job, selectors
from annotations.triage.models import Cluster, ClusterMember, Cursor
from tests.annotations.triage.helpers import around, centres, expected_priority, make_items

pytestmark = pytest.mark.django_db


def _exact_growth(cluster: Cluster, cut: dt.datetime) -> int:
    return ClusterMember.objects.filter(cluster=cluster, item_at__gt=cut).count()


def test_growth_moves_with_the_window_and_back():
    now = timezone.now()
    c0 = centres(1, seed=31)[0]
    make_items(around(c0, 3, seed=1), occurred_at=now - dt.timedelta(hours=23))
    make_items(around(c0, 2, seed=2), occurred_at=now - dt.timedelta(minutes=5))
    job.triage_run(now=now)
    c = Cluster.objects.get()
    assert c.growth_24h == 5
    later = now + dt.timedelta(hours=2)  # the three older members leave the window
    assert job.triage_run(now=later).growth_updated == 1
    c.refresh_from_db()
    assert c.growth_24h == 2 == _exact_growth(c, later - dt.timedelta(hours=24))
    assert c.priority == expected_priority(size=5, growth_24h=2, max_severity=0, negative_count=5)
    job.triage_run(now=now)  # a clock set back brings them in again
    c.refresh_from_db()
    assert c.growth_24h == 5
    # Nothing moved: nothing is written.
    assert job.triage_run(now=now).growth_updated == 0


def test_new_members_count_as_growth_in_the_same_window_and_a_full_scan_agrees():
    now = timezone.now()
    c0 = centres(1, seed=32)[0]
    make_items(around(c0, 4, seed=1), occurred_at=now - dt.timedelta(hours=20))
    job.triage_run(now=now)
    later = now + dt.timedelta(hours=6)
    make_items(around(c0, 3, seed=2), occurred_at=later - dt.timedelta(minutes=1))
    job.triage_run(now=later)
    c = Cluster.objects.get()
    assert (c.size, c.growth_24h) == (7, 3)
    Cluster.objects.filter(pk=c.pk).update(growth_24h=99)  # drift is put right by the hourly full scan
    job.triage_run(now=later, full_scan=True)
    c.refresh_from_db()
    assert c.growth_24h == 3


def test_a_merge_recounts_growth_with_the_jobs_cut(moderator):
    now = timezone.now()
    a_centre, b_centre = centres(2, seed=33)
    make_items(around(a_centre, 3, seed=1), occurred_at=now - dt.timedelta(hours=23, minutes=30))
    make_items(around(b_centre, 3, seed=2), occurred_at=now - dt.timedelta(minutes=1))
    job.triage_run(now=now)
    a, b = Cluster.objects.order_by("id")
    actions.clusters_merge(actor=moderator, cluster_ids=[a.pk, b.pk], into_id=a.pk)
    a.refresh_from_db()
    assert a.growth_24h == 6  # the job's cut (now - 24 h), not the wall clock's
    later = now + dt.timedelta(hours=1)
    job.triage_run(now=later)
    a.refresh_from_db()
    assert a.growth_24h == 3 == _exact_growth(a, later - dt.timedelta(hours=24))


def test_representatives_are_the_nearest_members_across_batches(settings):
    settings.TRIAGE_BATCH_SIZE = 4
    make_items(around(centres(1, seed=34)[0], 11, seed=1, spread=0.03))
    result = job.triage_run()
    assert result.batches == 3 and Cluster.objects.count() == 1
    c = Cluster.objects.get()
    nearest = list(ClusterMember.objects.filter(cluster=c).order_by("distance", "item_id")[:3]
                   .values_list("item_id", "distance"))
    assert c.representative_ids == [i for i, _ in nearest]
    assert c.representative_distances == pytest.approx([d for _, d in nearest])


def test_where_tags_and_severity_grow_with_each_batch():
    low = Tag.objects.create(name="Triage typo", slug="triage-typo", severity=1)
    high = Tag.objects.create(name="Triage unsafe", slug="triage-unsafe", severity=4)
    c0 = centres(1, seed=35)[0]
    make_items(around(c0, 3, seed=1), environment="prod", model_version="m-2", tag_ids=[low.pk])
    job.triage_run()
    make_items(around(c0, 2, seed=2), environment="dev", model_version="m-1", tag_ids=[high.pk, low.pk])
    make_items(around(c0, 1, seed=3), environment="prod", model_version="m-2", is_negative=True)
    job.triage_run()
    c = Cluster.objects.get()
    assert c.size == 6
    assert c.environments == ["dev", "prod"] and c.model_versions == ["m-1", "m-2"]
    assert c.tag_ids == sorted([low.pk, high.pk]) and c.max_severity == 4
    assert c.priority == expected_priority(size=6, growth_24h=6, max_severity=4, negative_count=6)


def test_the_job_stores_the_growth_cut_it_counts_from():
    now = timezone.now()
    make_items(around(centres(1, seed=36)[0], 2, seed=1))
    job.triage_run(now=now)
    cut = Cursor.objects.get(name=job.GROWTH_CURSOR_NAME).value
    assert cut == job._micros(now - dt.timedelta(hours=24))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM triage_cluster WHERE growth_24h <> 2")
        assert cursor.fetchone()[0] == 0


@pytest.mark.parametrize(("minutes", "text"), [
    (0, "0 minutes"), (1, "1 minute"), (59, "59 minutes"), (60, "1 hour"), (61, "1 hour, 1 minute"),
    (24 * 60, "1 day"), (3 * 24 * 60 + 4 * 60 + 5, "3 days, 4 hours"), (13 * 24 * 60 + 60, "13 days, 1 hour"),
    (15 * 24 * 60, "2 weeks, 1 day"), (21 * 24 * 60 + 60, "3 weeks"), (183 * 24 * 60, "6 months"),
])
def test_queue_age_text(minutes, text):
    assert selectors.age_text(dt.timedelta(minutes=minutes, seconds=30)) == text
