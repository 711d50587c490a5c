"""Curating in Debian's chromium: add an approved correction to a dataset, approve the example, cut a version and
download its export."""

from __future__ import annotations

import importlib
import json
import re

import pytest
from django.apps import apps
from playwright.sync_api import Page, expect

from annotations.curation import services
from annotations.curation.models import Example, ExampleStatus
from tests.annotations.curation.conftest import FIXED, SYSTEM, approve, make_reply
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def taxonomy(transactional_db) -> None:
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)


def test_curate_add_approve_cut_version_and_download(page: Page, live_server, expert, tmp_path):
    turn = make_reply(question="Where is the <b>Eiffel</b> Tower?")
    correction = approve(turn, expert)
    dataset = services.dataset_create(actor=expert, name="Geography fixes")

    login(page, live_server.url, "expert")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    page.get_by_role("link", name="Approved corrections").click()

    page.get_by_label("Add to dataset").select_option(label="Geography fixes")
    page.get_by_label(f"Select correction {correction.pk}").check()
    page.get_by_role("button", name="Add checked").click()
    expect(page.get_by_role("listitem").filter(has_text="Geography fixes: 1 added.")).to_be_visible()
    expect(page.locator(f"#correction-row-{correction.pk}")).to_contain_text("Geography fixes")

    page.goto(f"{live_server.url}/curation/d/{dataset.slug}/")
    example = page.locator("article.example")
    expect(example).to_have_count(1)
    expect(example.locator(".badge")).to_have_text("Proposed")
    expect(example.locator(".question")).to_contain_text("Where is the <b>Eiffel</b> Tower?")  # shown as text
    example.get_by_label("Reviewer notes").fill("Checked against the atlas.")
    example.get_by_role("button", name="Approve").click()
    expect(page.locator("article.example .badge")).to_have_text("Approved")
    assert Example.objects.get().status == ExampleStatus.APPROVED

    page.get_by_label("Note", exact=True).fill("first release")
    page.get_by_role("button", name="Cut version…").click()
    expect(page.get_by_text("This version will freeze 1 approved example:")).to_be_visible()
    page.get_by_role("button", name="Cut version of 1 example").click()
    version = page.locator("#version-1")
    expect(version).to_contain_text("Version 1")
    expect(version).to_contain_text("1 example")

    with page.expect_download() as info:
        version.get_by_role("button", name="OpenAI").click()
    download = info.value
    assert download.suggested_filename == "geography-fixes-v1-openai.jsonl"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == [{"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Hello 0"},
        {"role": "assistant", "content": "Hi 0, how can I help?"},
        {"role": "user", "content": "Where is the <b>Eiffel</b> Tower?"},
        {"role": "assistant", "content": FIXED},
    ]}]

    with page.expect_download() as info:
        version.get_by_role("button", name="DPO", exact=True).click()
    pair = json.loads(open(info.value.path(), encoding="utf-8").read())
    assert pair["chosen"] == FIXED and pair["rejected"] == turn.content
    with page.expect_download() as info:
        version.get_by_role("button", name="DPO chat").click()
    chat = json.loads(open(info.value.path(), encoding="utf-8").read())
    assert chat["chosen"] == [{"role": "assistant", "content": FIXED}] and chat["prompt"][0]["role"] == "system"
    expect(page).to_have_url(re.compile(rf"/curation/d/{dataset.slug}/$"))


def test_approving_updates_counts_and_export_total_in_place_and_bulk_approve(page: Page, live_server, expert,
                                                                          moderator):
    dataset = services.dataset_create(actor=expert, name="Billing fixes")
    corrections = [approve(make_reply(question=f"Question {i}?", history=0), expert) for i in range(3)]
    services.examples_add(actor=moderator, dataset=dataset, correction_ids=[c.pk for c in corrections])

    login(page, live_server.url, "expert")
    page.goto(f"{live_server.url}/curation/d/{dataset.slug}/")
    page.evaluate("window.__notReloaded = true")
    approved_count = page.locator('[data-status-filter="approved"] .count')
    proposed_count = page.locator('[data-status-filter="proposed"] .count')
    total = page.locator("[data-export-total]")
    expect(approved_count).to_have_text("0")
    expect(total).to_have_text("0")

    first = page.locator("article.example").first
    first.get_by_role("button", name="Approve", exact=True).click()
    expect(first.locator(".badge")).to_have_text("Approved")
    expect(approved_count).to_have_text("1")
    expect(proposed_count).to_have_text("2")
    expect(total).to_have_text("1")
    expect(page.locator("#export-total .scrub-summary")).to_have_text("Nothing to scrub.")

    page.locator('[data-status-filter="proposed"]').click()
    expect(page.locator("article.example")).to_have_count(2)
    page.get_by_role("button", name="Approve all…").click()
    expect(page.get_by_text("Approve 2 proposed examples?")).to_be_visible()
    page.get_by_role("button", name="Approve 2 examples").click()
    expect(page.get_by_role("status").filter(has_text="2 examples approved.")).to_be_visible()
    expect(approved_count).to_have_text("3")
    expect(proposed_count).to_have_text("0")
    expect(total).to_have_text("3")
    assert page.evaluate("window.__notReloaded") is True
    assert Example.objects.filter(status=ExampleStatus.APPROVED).count() == 3

    page.get_by_role("button", name="Cut version…").click()
    expect(page.get_by_text("This version will freeze 3 approved examples:")).to_be_visible()
    expect(page.locator("[data-cut-preview] li")).to_have_count(3)
    page.get_by_role("button", name="Cut version of 3 examples").click()
    expect(page.locator("#version-1")).to_contain_text("3 examples")
