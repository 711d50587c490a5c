"""The dataset page tells the truth: a review answers with the card and, out of band, the counts and the export
total; bulk approve/reject of the filtered set is confirmed by count and all or nothing; cutting a version shows
what it freezes first and refuses when that changed."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotations.curation import selectors, services
from annotations.curation.models import DatasetVersion, Example, ExampleStatus
from tests.annotations.curation.conftest import approve, make_reply

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def expert_client(client, expert):
    client.force_login(expert)
    return client


def test_approving_answers_with_the_card_counts_and_export_total(expert_client, curated):
    proposed = curated.examples.get(status=ExampleStatus.PROPOSED)
    response = expert_client.post(reverse("curation:example_review", args=[proposed.pk]),
                                  {"decision": "approve", "filter": "proposed"}, headers=HX)
    html = response.content.decode()
    assert response.status_code == 200 and f'id="example-{proposed.pk}"' in html
    assert 'id="status-filter"' in html and 'id="export-total"' in html and 'id="bulk"' in html
    assert html.count('hx-swap-oob="true"') == 3
    assert re.search(r'data-status-filter="approved">Approved <span class="count">3</span>', html)
    assert re.search(r'data-status-filter="proposed"[^>]*>Proposed <span class="count">0</span>', html) or \
        re.search(r'aria-current="true" data-status-filter="proposed">Proposed <span class="count">0</span>', html)
    assert "<span data-export-total>3</span> approved examples" in html


def test_bulk_approve_asks_with_the_count_then_applies_all(expert_client, curated, expert):
    for _ in range(2):
        correction = approve(make_reply(history=0), expert)
        services.examples_add(actor=expert, dataset=curated, correction_ids=[correction.pk])
    url = reverse("curation:examples_bulk", args=[curated.slug])
    ask = expert_client.post(url, {"status": "proposed", "decision": "approve"}, headers=HX).content.decode()
    assert "Approve 3 proposed examples?" in ask
    proposed = list(curated.examples.filter(status=ExampleStatus.PROPOSED).order_by("id"))
    assert all(f"#{e.pk} " in ask for e in proposed)
    fingerprint = re.search(r'name="fingerprint" value="(\w+)"', ask).group(1)
    done = expert_client.post(url, {"status": "proposed", "decision": "approve", "confirm": "1",
                                    "fingerprint": fingerprint}, headers=HX)
    html = done.content.decode()
    assert done.status_code == 200 and "3 examples approved." in html
    assert "<span data-export-total>5</span>" in html
    assert not curated.examples.filter(status=ExampleStatus.PROPOSED).exists()


def test_bulk_is_all_or_nothing_and_names_each_refused_example(expert_client, curated, expert, second_expert):
    own = approve(make_reply(history=0), second_expert, author=expert)  # expert wrote it
    services.examples_add(actor=expert, dataset=curated, correction_ids=[own.pk])
    mine = curated.examples.get(correction=own)
    ids = curated.examples.filter(status=ExampleStatus.PROPOSED).values_list("id", flat=True)
    response = expert_client.post(reverse("curation:examples_bulk", args=[curated.slug]), {
        "status": "proposed", "decision": "approve", "confirm": "1", "fingerprint": selectors.fingerprint(ids),
    }, headers=HX)
    html = response.content.decode()
    assert response.status_code == 400 and "Nothing was changed: 1 example refused." in html
    assert f"#{mine.pk}: Four-eyes review" in html
    assert curated.examples.filter(status=ExampleStatus.PROPOSED).count() == 2  # neither was approved


def test_bulk_refuses_when_the_filtered_set_changed(expert_client, curated, expert):
    stale = selectors.fingerprint(curated.examples.filter(status=ExampleStatus.PROPOSED).values_list("id", flat=True))
    services.examples_add(actor=expert, dataset=curated, correction_ids=[approve(make_reply(), expert).pk])
    response = expert_client.post(reverse("curation:examples_bulk", args=[curated.slug]), {
        "status": "proposed", "decision": "reject", "confirm": "1", "fingerprint": stale}, headers=HX)
    assert response.status_code == 400 and "changed since you confirmed (now 2)" in response.content.decode()
    assert not curated.examples.filter(status=ExampleStatus.REJECTED).exists()


def test_cutting_a_version_previews_what_it_freezes_and_refuses_a_stale_preview(expert_client, curated):
    approved = list(curated.examples.filter(status=ExampleStatus.APPROVED).order_by("id"))
    preview = expert_client.get(reverse("curation:version_preview", args=[curated.slug]), {"note": "v1"},
                                headers=HX).content.decode()
    assert "This version will freeze 2 approved examples:" in preview
    assert [int(i) for i in re.findall(r'data-example-id="(\d+)"', preview)] == [e.pk for e in approved]
    fingerprint = re.search(r'name="fingerprint" value="(\w+)"', preview).group(1)
    proposed = curated.examples.get(status=ExampleStatus.PROPOSED)
    services.example_review(actor=curated.created_by, example_id=proposed.pk, decision="approve")
    cut = reverse("curation:version_cut", args=[curated.slug])
    expert_client.post(cut, {"note": "v1", "fingerprint": fingerprint})
    assert not DatasetVersion.objects.exists()
    approved_now = Example.objects.filter(dataset=curated, status="approved").values_list("id", flat=True)
    fresh = selectors.fingerprint(approved_now)
    expert_client.post(cut, {"note": "v1", "fingerprint": fresh})
    assert DatasetVersion.objects.get().example_count == 3


def test_bad_bulk_parameters_are_a_400(expert_client, curated):
    url = reverse("curation:examples_bulk", args=[curated.slug])
    assert expert_client.post(url, {"status": "proposed", "decision": "explode"}).status_code == 400
    assert expert_client.post(url, {"status": "x\x00", "decision": "approve"}).status_code == 400


def test_without_htmx_the_confirmations_are_pages_of_their_own(expert_client, curated):
    preview = expert_client.get(reverse("curation:version_preview", args=[curated.slug]))
    assert preview.status_code == 200 and b"<html" in preview.content
    assert b"This version will freeze 2 approved examples:" in preview.content
    ask = expert_client.post(reverse("curation:examples_bulk", args=[curated.slug]),
                             {"status": "proposed", "decision": "reject"})
    assert ask.status_code == 200 and b"Reject 1 proposed example?" in ask.content
    fingerprint = re.search(rb'name="fingerprint" value="(\w+)"', ask.content).group(1).decode()
    done = expert_client.post(reverse("curation:examples_bulk", args=[curated.slug]),
                              {"status": "proposed", "decision": "reject", "confirm": "1", "fingerprint": fingerprint})
    assert done.status_code == 302 and curated.examples.filter(status=ExampleStatus.REJECTED).count() == 1
