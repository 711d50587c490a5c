"""The triage queue in Debian's chromium: a scannable row (sentence title, keywords, snippets, age from the oldest
feedback), keyboard claim, live update when the job adds clusters, routing to an expert who gets the claim,
bulk-tagging a cluster's members, merging two clusters, merging near-duplicates in one click."""

from __future__ import annotations

import datetime as dt
import importlib
import re

import pytest
from django.apps import apps
from playwright.sync_api import Page, expect

from annotations.models import Annotation, Tag
from annotations.triage import job, proposals
from annotations.triage.models import Cluster, ClusterProposal, Status
from tests.annotations.triage.helpers import around, centres, make_items
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LIVE_UPDATE_MS = 20_000


@pytest.fixture(autouse=True)
def taxonomy(transactional_db) -> None:
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)


def _clusters(sizes: list[int], seed: int = 71) -> list[Cluster]:
    cs = centres(len(sizes), seed=seed)
    for i, (c, n) in enumerate(zip(cs, sizes, strict=True)):
        make_items(around(c, n, seed=seed + i), texts=[f"topic{i} complaint about answer {j}" for j in range(n)])
    job.triage_run()
    return list(Cluster.objects.order_by("-priority", "-id"))


def row(page: Page, cluster: Cluster):
    return page.locator(f'tr[data-cluster-id="{cluster.pk}"]')


def test_a_queue_row_reads_as_a_sentence_with_snippets_and_its_real_age(page: Page, live_server, moderator):
    june = dt.datetime(2026, 6, 3, 9, 30, tzinfo=dt.UTC)
    texts = ["The visa fee quoted is out of date. It went up in April.", "Visa fee wrong, says 30 dollars.",
             "Fee for the Japan visa is 45 now", "Outdated visa fee"]
    make_items(around(centres(1, seed=61)[0], 4, seed=3), texts=texts, occurred_at=june)
    job.triage_run()
    cluster = Cluster.objects.get()
    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/triage/")
    r = row(page, cluster)
    # The title is the nearest member's first sentence; the other members show as snippets.
    assert cluster.title in {"The visa fee quoted is out of date.", *texts[1:]}
    expect(r.locator("a.cluster-link")).to_have_text(cluster.title)
    expect(r.locator(".cluster-terms")).to_contain_text("visa")
    expect(r.locator(".cluster-samples li")).to_have_count(3)
    expect(r.locator(".cluster-samples li")).to_have_text(cluster.samples)
    expect(r.locator(".cell-age")).to_have_text(re.compile(r"^\d+ months$"))
    expect(r.locator(".cell-age")).to_have_attribute("title", "oldest feedback 2026-06-03 09:30 UTC")
    expect(r.locator(".badge.tone-late")).to_have_text("past SLA")
    expect(r.locator(".status")).to_have_text("New")
    expect(r.locator(".badge.env")).to_have_text("Production")


def test_claim_with_the_keyboard_and_live_update(page: Page, live_server, moderator):
    first, second = _clusters([4, 2])
    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/triage/")
    expect(row(page, first)).to_be_visible()
    page.keyboard.press("j")
    expect(row(page, first)).to_have_class(re.compile("is-selected"))
    page.keyboard.press("j")
    expect(row(page, second)).to_have_class(re.compile("is-selected"))
    page.keyboard.press("k")
    page.keyboard.press("c")
    expect(page.locator(".messages")).to_contain_text(f"You claimed cluster #{first.pk}")
    expect(row(page, first)).to_contain_text("claimed by mod")
    expect(row(page, first)).to_contain_text("Triaging")
    page.keyboard.press("?")
    expect(page.locator("#triage-help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#triage-help")).to_be_hidden()

    # The job adds a cluster while the queue is open: it appears without a reload.
    make_items(around(centres(1, seed=99)[0], 6, seed=5), texts=[f"late arrival {j}" for j in range(6)])
    job.triage_run()
    newest = Cluster.objects.order_by("-id").first()
    expect(row(page, newest)).to_be_visible(timeout=LIVE_UPDATE_MS)
    expect(row(page, newest).locator(".status")).to_have_text("New")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/triage/c/\d+/$"))


def test_route_to_an_expert_who_then_sees_it(page: Page, live_server, moderator, expert):
    cluster = _clusters([3])[0]
    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/triage/c/{cluster.pk}/")
    page.locator("#claim-button").click()
    expect(page.locator("#cluster-claim")).to_contain_text("mod until")
    page.locator("#route-assignee").select_option(label="expert")
    page.locator("#route-button").click()
    expect(page.locator(".messages")).to_contain_text("Routed 1 clusters to domain experts")
    expect(page.locator("#cluster-status")).to_have_text("Needs expert")
    expect(page.locator("#cluster-owner")).to_have_text("expert")
    # The claim went with it: the expert holds it, not the moderator.
    expect(page.locator("#cluster-claim")).to_contain_text("expert until")

    page.context.clear_cookies()
    login(page, live_server.url, "expert")
    page.goto(f"{live_server.url}/triage/")
    expect(row(page, cluster)).to_be_visible()
    expect(row(page, cluster)).to_contain_text("claimed by expert")
    row(page, cluster).locator("a.cluster-link").click()
    expect(page.get_by_role("button", name="Release claim")).to_be_visible()
    page.locator("#guidance-text").fill("Refunds: 30 days. Quote policy 4.2.")
    page.get_by_role("button", name="Save guidance").click()
    expect(page.locator(".messages")).to_contain_text("Guidance saved")
    page.locator("#status-select").select_option("corrected")
    page.get_by_role("button", name="Set status").click()
    expect(page.locator("#cluster-status")).to_have_text("Corrected")


def test_bulk_tag_members_from_the_queue(page: Page, live_server, moderator):
    cluster = _clusters([3, 2])[0]
    tag = Tag.objects.get(slug="factually-incorrect") if Tag.objects.filter(slug="factually-incorrect").exists() \
        else Tag.objects.order_by("pk").first()
    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/triage/")
    row(page, cluster).locator("input[type=checkbox]").check()
    page.locator("#bulk-op").select_option("tag")
    expect(page.locator("#bulk-tag")).to_be_visible()
    page.locator("#bulk-tag").select_option(str(tag.pk))
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".messages")).to_contain_text("Tagged 3 replies")
    assert Annotation.objects.filter(tags=tag, author=moderator).count() == 3
    page.goto(f"{live_server.url}/triage/c/{cluster.pk}/")
    expect(page.locator("#cluster-tags")).to_contain_text(tag.name)
    # Each member links into the review workspace at its reply.
    href = page.locator("a.member-link").first.get_attribute("href")
    assert re.search(r"/review/c/\d+/#(turn|card)-\d+$", href)


def test_merge_two_clusters(page: Page, live_server, moderator):
    big, small = _clusters([4, 2])
    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/triage/")
    row(page, big).locator("input[type=checkbox]").check()
    row(page, small).locator("input[type=checkbox]").check()
    page.locator("#bulk-op").select_option("merge")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".messages")).to_contain_text(f"Merged 1 clusters into #{big.pk}")
    expect(row(page, small)).to_have_count(0)
    expect(row(page, big).locator(".cell-size")).to_have_text("6")
    small.refresh_from_db()
    assert small.status == Status.CLOSED and small.duplicate_of_id == big.pk


def test_merge_near_duplicates_from_the_queue_in_one_click(page: Page, live_server, moderator, settings):
    centre = centres(1, seed=81)[0]
    make_items(around(centre, 3, seed=1), texts=["Visa fee is out of date", "Visa fee wrong", "Old visa fee"])
    job.triage_run()
    settings.TRIAGE_ASSIGN_DISTANCE = 0.0  # a second cluster of the same problem, created apart
    make_items(around(centre, 2, seed=2), texts=["The visa price is old", "Visa costs more now"])
    job.triage_run()
    assert proposals.triage_recluster().merges == 1
    large, small = Cluster.objects.order_by("-size")
    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/triage/")
    expect(row(page, small).locator(".merge-hint")).to_contain_text(f"Looks like the same problem as #{large.pk}")
    row(page, small).get_by_role("button", name=f"Merge into #{large.pk}").click()
    expect(page.locator(".messages")).to_contain_text("Proposal accepted")
    expect(row(page, small)).to_have_count(0)
    expect(row(page, large).locator(".cell-size")).to_have_text("5")
    expect(page.locator(".merge-hint")).to_have_count(0)
    assert ClusterProposal.objects.get().status == "accepted"
