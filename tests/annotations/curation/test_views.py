"""Curation pages: permissions, streaming vs background exports, review by htmx, adding from the corrections list,
and pinned query counts."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotations.curation import services
from annotations.curation.models import Example, ExampleStatus, ExportJob
from tests.annotations.curation.conftest import approve, make_reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def expert_client(client, expert):
    client.force_login(expert)
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_dataset_pages_render_for_every_role(client, curated, analyst, django_assert_num_queries):
    client.force_login(analyst)
    response = client.get(reverse("curation:datasets"))
    assert response.status_code == 200 and b"Geography fixes" in response.content
    assert b"New dataset" not in response.content
    page = client.get(curated.get_absolute_url())
    assert page.status_code == 200
    assert page.content.count(b'class="example ') == 3
    assert b"Approve</button>" not in page.content  # analysts read only
    # the user with their groups (the session comes from Redis), dataset, examples, counts, versions, jobs
    with django_assert_num_queries(6):
        client.get(curated.get_absolute_url())


def test_example_page_query_count_does_not_grow_with_examples(expert_client, expert, curated,
                                                               django_assert_num_queries):
    url = curated.get_absolute_url() + "?status=approved"
    with django_assert_num_queries(4):
        expert_client.get(url, headers={"HX-Request": "true"})
    for _ in range(5):
        correction = approve(make_reply(history=0), expert)
        services.examples_add(actor=expert, dataset=curated, correction_ids=[correction.pk])
    Example.objects.filter(dataset=curated).update(status=ExampleStatus.APPROVED)
    with django_assert_num_queries(4):
        response = expert_client.get(url, headers={"HX-Request": "true"})
    assert response.content.count(b'class="example ') == 8
    assert b"<html" not in response.content


def test_anonymous_and_roleless_users_are_kept_out(client, curated, django_user_model):
    assert client.get(reverse("curation:datasets")).status_code == 302
    client.force_login(django_user_model.objects.create_user("nobody"))
    assert client.get(reverse("curation:datasets")).status_code == 403
    assert client.post(reverse("curation:export", args=[curated.slug]), {"format": "openai"}).status_code == 403


def test_expert_creates_reviews_and_cuts(expert_client, curated):
    response = expert_client.post(reverse("curation:datasets"), {"name": "Tone fixes", "description": ""})
    assert response.status_code == 302 and response["Location"] == "/curation/d/tone-fixes/"
    assert expert_client.post(reverse("curation:datasets"), {"name": "tone fixes"}).status_code == 400
    proposed = curated.examples.get(status=ExampleStatus.PROPOSED)
    response = expert_client.post(
        reverse("curation:example_review", args=[proposed.pk]),
        {"decision": "approve", "notes": "<script>x</script>"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert b"badge-approved" in response.content and b"&lt;script&gt;x&lt;/script&gt;" in response.content
    response = expert_client.post(reverse("curation:version_cut", args=[curated.slug]), {"note": "all three"})
    assert response.status_code == 302
    page = expert_client.get(curated.get_absolute_url())
    assert b"Version 1" in page.content and b"3 examples" in page.content


def test_moderator_cannot_review_or_cut(client, moderator, curated):
    client.force_login(moderator)
    example = curated.examples.first()
    assert client.post(reverse("curation:example_review", args=[example.pk]), {"decision": "reject"}).status_code == 403
    assert client.post(reverse("curation:version_cut", args=[curated.slug])).status_code == 403
    assert client.post(reverse("curation:datasets"), {"name": "x"}).status_code == 403


def test_small_exports_stream_as_attachments(client, analyst, curated):
    client.force_login(analyst)
    response = client.post(reverse("curation:export", args=[curated.slug]), {"format": "dpo"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="geography-fixes-dpo.jsonl"'
    rows = [json.loads(line) for line in body(response).splitlines()]
    assert len(rows) == 2 and set(rows[0]) == {"prompt", "chosen", "rejected"}
    response = client.post(reverse("curation:export", args=[curated.slug]), {"format": "dpo", "dpo_form": "messages"})
    assert isinstance(json.loads(body(response).splitlines()[0])["prompt"], list)
    response = client.post(reverse("curation:export", args=[curated.slug]), {"format": "openai", "version": "4"})
    assert response.status_code == 404


def test_large_exports_become_jobs_with_progress_and_a_download(client, expert, curated, settings, tmp_path,
                                                                django_capture_on_commit_callbacks):
    settings.CURATION_STREAM_MAX_EXAMPLES = 1
    settings.CURATION_EXPORT_DIR = tmp_path
    client.force_login(expert)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("curation:export", args=[curated.slug]), {"format": "csv"})
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert len(callbacks) == 1  # the worker's task is enqueued once the job row is committed
    page = client.get(job.get_absolute_url(), headers={"HX-Request": "true", "HX-Target": "export-status"})
    assert b'hx-trigger="every 1s"' in page.content and b"Queued" in page.content
    assert client.get(reverse("curation:export_download", args=[job.pk])).status_code == 404
    services.export_job_run(job_id=job.pk)
    page = client.get(job.get_absolute_url(), headers={"HX-Request": "true", "HX-Target": "export-status"})
    assert b"every 1s" not in page.content and b"Download geography-fixes-csv.csv" in page.content
    download = client.get(reverse("curation:export_download", args=[job.pk]))
    assert download["Content-Disposition"] == 'attachment; filename="geography-fixes-csv.csv"'
    assert body(download).startswith(b"\xef\xbb\xbfexample_id,")


def test_corrections_list_filters_and_adds_checked_or_every_match(client, moderator, expert, dataset):
    approved = [approve(make_reply(history=0, model_version=f"m-{i % 2}"), expert) for i in range(4)]
    client.force_login(moderator)
    page = client.get(reverse("curation:corrections"), {"model_version": "m-1"})
    assert page.status_code == 200 and page.content.count(b'name="correction"') == 2
    response = client.post(reverse("curation:correction_add"),
                           {"dataset": dataset.pk, "correction": [approved[0].pk], "query": "model_version=m-1"})
    assert response.status_code == 302 and response["Location"] == "/curation/corrections/?model_version=m-1"
    assert dataset.examples.count() == 1
    client.post(reverse("curation:correction_add"), {"dataset": dataset.pk, "all": "1", "query": "model_version=m-1"})
    assert sorted(dataset.examples.values_list("correction_id", flat=True)) == [approved[0].pk, approved[1].pk,
                                                                              approved[3].pk]


def test_analysts_cannot_add(client, analyst, expert, dataset):
    correction = approve(make_reply(), expert)
    client.force_login(analyst)
    assert b"Add checked" not in client.get(reverse("curation:corrections")).content
    response = client.post(reverse("curation:correction_add"), {"dataset": dataset.pk, "correction": [correction.pk]})
    assert response.status_code == 403


def test_review_page_links_an_approved_correction_to_the_add_form(client, expert):
    turn = make_reply()
    other = approve(make_reply(), expert)
    correction = approve(turn, expert)
    client.force_login(expert)
    page = client.get(reverse("annotations:review", args=[turn.conversation_id]))
    link = f'href="/curation/corrections/?turn={turn.pk}"'.encode()
    assert link in page.content
    listed = client.get(f"/curation/corrections/?turn={turn.pk}")
    assert f'value="{correction.pk}"'.encode() in listed.content
    assert f'value="{other.pk}"'.encode() not in listed.content


@pytest.mark.parametrize("value", ["x", "¹", "1.5"])
def test_integer_parameters_that_do_not_parse_are_a_400(expert_client, curated, value):
    assert expert_client.get(curated.get_absolute_url(), {"after": value}).status_code == 400
    assert expert_client.get(reverse("curation:corrections"), {"offset": value}).status_code == 400
    assert expert_client.get(reverse("curation:corrections"), {"tag": value}).status_code == 400
    export = expert_client.post(reverse("curation:export", args=[curated.slug]), {"format": "csv", "version": value})
    assert export.status_code == 400


def test_unknown_filter_choices_fall_back_to_any(expert_client, curated):
    assert expert_client.get(curated.get_absolute_url(), {"status": "nope"}).status_code == 200
    assert expert_client.get(reverse("curation:corrections"), {"environment": "nope"}).status_code == 200
