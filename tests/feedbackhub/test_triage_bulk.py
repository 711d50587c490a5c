"""Triage bulk actions are all or nothing, and a refusal names the cluster and the reason."""

import importlib

import pytest
from django.apps import apps
from django.urls import reverse

from annotations.models import Annotation, Tag
from annotations.triage import actions, job
from annotations.triage.models import Cluster, Status
from tests.annotations.triage.helpers import around, centres, make_items

pytestmark = pytest.mark.django_db


def _clusters(k: int = 2) -> list[Cluster]:
    for i, centre in enumerate(centres(k, seed=41)):
        make_items(around(centre, 3, seed=i + 1), texts=[f"refund window wrong {j}" for j in range(3)])
    job.triage_run()
    return list(Cluster.objects.order_by("pk"))


def _bulk(client, **data):
    return client.post(reverse("triage:bulk"), data, follow=True).content.decode()


def test_bulk_status_changes_no_cluster_when_one_is_refused(client, moderator, expert):
    a, b = _clusters(2)
    actions.clusters_route(actor=moderator, cluster_ids=[a.pk])  # the expert may see a, not b
    client.force_login(expert)
    html = _bulk(client, clusters=[a.pk, b.pk], op="status", status=Status.CORRECTED)
    assert f"Nothing was changed: cluster #{b.pk}: This cluster is not routed to you." in html
    a.refresh_from_db()
    assert a.status == Status.NEEDS_EXPERT  # not corrected: the whole action rolled back


def test_bulk_route_changes_no_cluster_when_one_is_closed(client, moderator):
    a, b = _clusters(2)
    actions.cluster_set_status(actor=moderator, cluster_id=b.pk, status=Status.CLOSED, resolution="fixed")
    client.force_login(moderator)
    html = _bulk(client, clusters=[a.pk, b.pk], op="route")
    assert f"Nothing was changed: cluster #{b.pk}: it is closed." in html
    a.refresh_from_db()
    assert a.status == Status.NEW and a.routed_group_id is None


def test_bulk_tag_creates_no_annotation_when_one_cluster_is_refused(client, moderator):
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)
    a, b = _clusters(2)
    tag = Tag.objects.filter(is_active=True).first()
    missing = b.pk + 1000
    client.force_login(moderator)
    html = _bulk(client, clusters=[a.pk, b.pk, missing], op="tag", tag=tag.pk)
    assert f"Nothing was changed: cluster #{missing}: Cluster #{missing} does not exist." in html
    assert not Annotation.objects.exists()
    html = _bulk(client, clusters=[a.pk, b.pk], op="tag", tag=tag.pk)
    assert "Tagged 6 replies." in html
    assert Annotation.objects.count() == 6


def test_bulk_status_applies_to_every_cluster_when_none_is_refused(client, moderator):
    a, b = _clusters(2)
    client.force_login(moderator)
    assert "Updated 2 clusters." in _bulk(client, clusters=[a.pk, b.pk], op="status", status=Status.TRIAGING)
    assert set(Cluster.objects.values_list("status", flat=True)) == {Status.TRIAGING}


def test_a_nul_in_guidance_is_refused_with_the_field_named(client, moderator):
    a, _ = _clusters(2)
    client.force_login(moderator)
    html = client.post(reverse("triage:guidance", args=[a.pk]), {"guidance": "a\x00b"}, follow=True).content.decode()
    assert "guidance: Null characters are not allowed." in html
