import pytest
from django.urls import reverse

from annotations.triage import actions, job
from annotations.triage.models import Cluster, ClusterMember, Status
from tests.annotations.triage.helpers import around, centres, make_items

pytestmark = pytest.mark.django_db


def _clusters(k=2, n=3):
    cs = centres(k, seed=41)
    for i, c in enumerate(cs):
        make_items(around(c, n, seed=i + 1), texts=[f"<b>refund</b> window wrong {j}" for j in range(n)])
    job.triage_run()
    return list(Cluster.objects.order_by("-priority", "-id"))


def test_queue_lists_clusters_by_priority_with_a_fixed_number_of_queries(client, moderator,
                                                                        django_assert_num_queries):
    clusters = _clusters(3)
    client.force_login(moderator)
    url = reverse("triage:queue")
    client.get(url)
    # user with roles (the session comes from Redis), clusters (with owner/claimer/group), the merge proposals
    # between them and others, change stamp, tags, users; the filter choices come from the cache after the first
    # request
    with django_assert_num_queries(6):
        response = client.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    positions = [html.index(f'data-cluster-id="{c.pk}"') for c in clusters]
    assert positions == sorted(positions)
    assert "<b>refund" not in html
    _clusters(2, n=4)  # more clusters do not add queries
    with django_assert_num_queries(6):
        client.get(url)


def test_queue_rows_fragment_and_stamp(client, moderator):
    _clusters(1)
    client.force_login(moderator)
    rows = client.get(reverse("triage:queue") + "?fragment=rows", headers={"HX-Request": "true"})
    assert rows.status_code == 200 and b'id="queue"' in rows.content
    assert b"browse-filters" not in rows.content
    stamp = rows.content.decode().split('data-stamp="')[1].split('"')[0]
    same = client.get(reverse("triage:stamp"), {"since": stamp})
    assert "HX-Trigger" not in same.headers
    changed = client.get(reverse("triage:stamp"), {"since": "2000-01-01"})
    assert "triage-changed" in changed.headers["HX-Trigger"]


def test_queue_is_for_moderators_and_experts(client, analyst, expert):
    client.force_login(analyst)
    assert client.get(reverse("triage:queue")).status_code == 403
    client.force_login(expert)
    assert client.get(reverse("triage:queue")).status_code == 200


def test_cluster_page_escapes_text_and_links_into_review(client, moderator, django_assert_max_num_queries):
    c = _clusters(1)[0]
    client.force_login(moderator)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("triage:cluster", args=[c.pk]))
    html = response.content.decode()
    assert "&lt;b&gt;refund&lt;/b&gt;" in html and "<b>refund" not in html
    member = ClusterMember.objects.filter(cluster=c).select_related("item").first()
    assert f"/review/c/{member.item.conversation_id}/#turn-{member.item.turn_id}" in html


def test_expert_sees_only_routed_clusters(client, moderator, expert):
    a, b = _clusters(2)
    client.force_login(expert)
    assert client.get(reverse("triage:cluster", args=[a.pk])).status_code == 404
    actions.clusters_route(actor=moderator, cluster_ids=[a.pk])
    assert client.get(reverse("triage:cluster", args=[a.pk])).status_code == 200
    assert client.get(reverse("triage:cluster", args=[b.pk])).status_code == 404


def test_claim_and_bulk_actions_redirect_with_messages(client, moderator, moderator2):
    a, b = _clusters(2)
    client.force_login(moderator)
    response = client.post(reverse("triage:claim", args=[a.pk]), {"next": "/triage/?status=open"})
    assert response.status_code == 303 and response["Location"] == "/triage/?status=open"
    a.refresh_from_db()
    assert a.claimed_by == moderator and a.status == Status.TRIAGING
    client.force_login(moderator2)
    response = client.post(reverse("triage:claim", args=[a.pk]), follow=True)
    assert b"Claimed by mod" in response.content
    # Off-site "next" is ignored.
    response = client.post(reverse("triage:bulk"), {"clusters": [a.pk, b.pk], "op": "merge", "into": a.pk,
                                                    "next": "https://evil.example/"})
    assert response["Location"] == reverse("triage:queue")
    b.refresh_from_db()
    assert b.duplicate_of_id == a.pk
    response = client.post(reverse("triage:bulk"), {"op": "assign"}, follow=True)
    assert b"Select at least one cluster" in response.content


def test_guidance_is_saved_and_status_errors_are_reported(client, moderator):
    c = _clusters(1)[0]
    client.force_login(moderator)
    client.post(reverse("triage:guidance", args=[c.pk]), {"guidance": "Quote policy 4.2"})
    c.refresh_from_db()
    assert c.guidance == "Quote policy 4.2"
    response = client.post(reverse("triage:status", args=[c.pk]), {"status": "closed"}, follow=True)
    assert b"Closing needs a resolution" in response.content


@pytest.mark.parametrize("query", [
    {"tag": "¹"}, {"tag": "9" * 30}, {"owner": "²"}, {"owner": "someone"}, {"model_version": "gpt\x00"},
    {"status": "<script>"},
])
def test_malformed_queue_filters_are_a_400_naming_the_field(client, moderator, query):
    client.force_login(moderator)
    response = client.get(reverse("triage:queue"), query)
    assert response.status_code == 400
    assert next(iter(query)) in response.content.decode()


def test_a_bulk_action_with_an_id_that_is_not_a_number_is_refused(client, moderator):
    client.force_login(moderator)
    response = client.post(reverse("triage:bulk"), {"clusters": ["1²"], "op": "assign"}, follow=True)
    assert response.status_code == 200  # back on the queue, with the refusal as a message
    assert "Ids must be whole numbers." in response.content.decode()
