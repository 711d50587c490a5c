"""Curation services: adding approved corrections (one, many, every match), review, versions, permissions."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from annotations import services as review
from annotations.curation import exporters, selectors, services
from annotations.curation.models import Example, ExampleStatus
from sessions.models import Turn
from tests.annotations.curation.conftest import FIXED, SYSTEM, approve, make_reply

pytestmark = pytest.mark.django_db
FORMATS = ("openai", "dpo", "hf", "w3c", "csv")


def export_bytes(format: str, version) -> bytes:  # noqa: A002
    out = io.BytesIO()
    exporters.write(exporters.get(format), exporters.ExportSource(version=version), out)
    return out.getvalue()


def test_adding_snapshots_context_and_never_duplicates(dataset, expert, moderator):
    turn = make_reply(history=2)
    correction = approve(turn, expert)
    first = services.examples_add(actor=moderator, dataset=dataset, correction_ids=[correction.pk])
    again = services.examples_add(actor=expert, dataset=dataset, correction_ids=[correction.pk, correction.pk])
    assert first.added == [correction.pk] and again.added == [] and again.already_in == [correction.pk]
    example = Example.objects.get(dataset=dataset)
    assert example.status == ExampleStatus.PROPOSED and example.proposed_by == moderator
    assert example.system_prompt == SYSTEM and example.original == turn.content and example.corrected == FIXED
    assert [m["role"] for m in example.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert example.metadata["turn_id"] == turn.pk and example.metadata["model_version"] == "gpt-test-1"


def test_only_approved_corrections_are_added_and_the_rest_are_named(dataset, expert):
    draft = review.correction_save(actor=expert, turn=make_reply(), text="draft")
    result = services.examples_add(actor=expert, dataset=dataset, correction_ids=[draft.pk, 999_999])
    assert result.added == [] and result.not_approved == [draft.pk, 999_999]
    assert "2 skipped: not approved corrections (id" in result.message
    with pytest.raises(ValidationError, match="whole numbers"):
        services.examples_add(actor=expert, dataset=dataset, correction_ids=["x"])


def test_add_every_match_of_a_filter_not_one_page(dataset, expert):
    for i in range(selectors.PAGE_SIZE + 5):
        approve(make_reply(history=0, model_version="m-a" if i % 2 else "m-b"), expert)
    result = services.examples_add_matching(
        actor=expert, dataset=dataset, filters=selectors.CorrectionFilters(model_version="m-a")
    )
    assert len(result.added) == (selectors.PAGE_SIZE + 5) // 2
    assert set(dataset.examples.values_list("metadata__model_version", flat=True)) == {"m-a"}
    hidden = selectors.approved_corrections(selectors.CorrectionFilters(not_in=dataset.pk, model_version="m-a"))
    assert not hidden.exists()


def test_roles(dataset, expert, moderator, analyst):
    correction = approve(make_reply(), expert)
    with pytest.raises(PermissionDenied):
        services.examples_add(actor=analyst, dataset=dataset, correction_ids=[correction.pk])
    services.examples_add(actor=moderator, dataset=dataset, correction_ids=[correction.pk])
    example = dataset.examples.get()
    for call in (
        lambda: services.example_review(actor=moderator, example_id=example.pk, decision="approve"),
        lambda: services.version_cut(actor=moderator, dataset=dataset),
        lambda: services.dataset_create(actor=moderator, name="Mine"),
    ):
        with pytest.raises(PermissionDenied):
            call()


def test_review_sets_status_reviewer_and_notes(dataset, expert):
    services.examples_add(actor=expert, dataset=dataset, correction_ids=[approve(make_reply(), expert).pk])
    example = dataset.examples.get()
    services.example_review(actor=expert, example_id=example.pk, notes="check the date")
    example.refresh_from_db()
    assert example.status == ExampleStatus.PROPOSED and example.reviewer_notes == "check the date"
    services.example_review(actor=expert, example_id=example.pk, decision="reject")
    example.refresh_from_db()
    assert example.status == ExampleStatus.REJECTED and example.reviewed_by == expert
    assert example.reviewer_notes == "check the date"
    with pytest.raises(ValidationError, match="Unknown decision"):
        services.example_review(actor=expert, example_id=example.pk, decision="maybe")


def test_dataset_names_are_unique(expert, dataset):
    with pytest.raises(ValidationError, match="already exists"):
        services.dataset_create(actor=expert, name="geography  FIXES")
    assert services.dataset_create(actor=expert, name="Geography fixes!").slug == "geography-fixes-2"


def test_a_version_needs_approved_examples(dataset, expert):
    with pytest.raises(ValidationError, match="no approved examples"):
        services.version_cut(actor=expert, dataset=dataset)


def test_version_exports_stay_byte_identical_after_later_edits(curated, expert, moderator):
    v1 = services.version_cut(actor=expert, dataset=curated, note="v1")
    assert (v1.number, v1.example_count) == (1, 2)
    before = {fmt: export_bytes(fmt, v1) for fmt in FORMATS if fmt != "w3c"}

    # Later: an example is rejected, another re-noted, a new one approved; the correction and the turn change.
    first, second, third = curated.examples.order_by("id")
    services.example_review(actor=expert, example_id=first.pk, decision="reject", notes="changed my mind")
    services.example_review(actor=expert, example_id=third.pk, decision="approve")
    Example.objects.filter(pk=second.pk).update(corrected="edited in place", tags=["new"])
    correction = first.correction
    correction.refresh_from_db()
    review.correction_save(actor=expert, turn=first.turn, text="Rewritten later.", version=correction.version)
    Turn.objects.filter(pk=first.turn_id).update(content="The turn text changed too.", system_prompt="new prompt")

    v1.refresh_from_db()
    after = {fmt: export_bytes(fmt, v1) for fmt in before}
    assert after == before
    assert services.version_sha256(v1) == v1.sha256
    v2 = services.version_cut(actor=expert, dataset=curated, note="v2")
    assert v2.number == 2 and v2.example_count == 2 and v2.sha256 != v1.sha256
    assert b"Rome." in export_bytes("openai", v2) and b"Rome." not in before["openai"]


def test_export_job_writes_the_file_and_progress(curated, expert, settings, tmp_path):
    settings.CURATION_EXPORT_DIR = tmp_path
    job = services.export_job_create(actor=expert, format="openai", dataset=curated)
    # The worker runs it after commit; here the service is called as the task would.
    job = services.export_job_run(job_id=job.pk)
    assert job.status == "done" and job.total == 2 and job.done == 2 and job.progress_percent == 100
    assert job.file_name == "geography-fixes-openai.jsonl"
    data = (tmp_path / f"{job.pk}-geography-fixes-openai.jsonl").read_bytes()
    assert data.count(b"\n") == 2 and job.size_bytes == len(data)
    assert not list(tmp_path.glob("*.part"))
