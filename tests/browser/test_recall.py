"""Recall in Debian's chromium: the semantic search page and the review workspace's "Similar past cases" panels,
on really embedded cases; a known near-duplicate ranks first."""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps
from playwright.sync_api import Page, expect

from tests.annotations.recall.recall_cases import REFUND_QUERY, build_cases
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def taxonomy(transactional_db) -> None:
    # A transactional test's flush removes the tags the data migration created.
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)


@pytest.fixture
def cases(moderator, expert):
    return build_cases(moderator, expert)


def card_link(case) -> str:
    return f"/review/c/{case.conversation.pk}/#card-{case.annotation.pk}"


def test_search_page_ranks_the_near_duplicate_first_and_filters(page: Page, live_server, analyst, cases):
    login(page, live_server.url, "analyst")
    page.get_by_role("link", name="Search feedback").click()
    expect(page.get_by_role("heading", name="Search feedback")).to_be_visible()
    page.get_by_label("Describe the problem").fill(REFUND_QUERY)
    page.get_by_label("Describe the problem").press("Enter")
    results = page.locator("#recall-results .recall-case")
    expect(results.first.locator("a.recall-open")).to_have_attribute("href", card_link(cases.refund))
    expect(results.first).to_contain_text("Correction approved")
    expect(results.first).to_contain_text("factually incorrect")
    expect(results.first.locator(".score")).to_have_text(re.compile(r"^\d{1,3}% similar$"))
    expect(page).to_have_url(re.compile(r"/recall/search/\?q=I(\+|%20)bought"))
    # A filter change swaps the results and pushes the URL.
    page.get_by_label("Environment").select_option("dev")
    expect(page).to_have_url(re.compile(r"environment=dev"))
    expect(results).to_have_count(1)
    expect(results.first.locator("a.recall-open")).to_have_attribute("href", card_link(cases.refund_dev))
    # Back restores the unfiltered search.
    page.go_back()
    expect(results.first.locator("a.recall-open")).to_have_attribute("href", card_link(cases.refund))


def test_similar_cases_panel_beside_a_reply_and_on_a_card(page: Page, live_server, moderator, cases):
    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/review/c/{cases.refund.conversation.pk}/")
    page.wait_for_selector("#review[data-ready='1']")
    reply = page.locator(f"#turn-{cases.refund.turn.pk}")
    reply.locator("details.similar > summary").click()
    panel = reply.locator("details.similar .recall-case")
    expect(panel.first.locator("a.recall-open")).to_have_attribute("href", card_link(cases.refund_dev))
    expect(panel.first).to_contain_text("Yearly subscriptions are refundable within 30 days")
    # The reply's own annotation is not offered as a past case of it.
    expect(reply.locator(f'details.similar a[href="{card_link(cases.refund)}"]')).to_have_count(0)

    card = page.locator(f"#card-{cases.refund.annotation.pk}")
    # A card shows its controls, the panel among them, once it is the active one.
    expect(card.locator("details.similar")).to_be_hidden()
    card.locator(".body").click()
    expect(card).to_have_class(re.compile(r"\bis-active\b"))
    card.locator("details.similar > summary").click()
    card_panel = card.locator("details.similar .recall-case")
    expect(card_panel.first.locator("a.recall-open")).to_have_attribute("href", card_link(cases.refund_dev))
    expect(card.locator(f'details.similar a[href="{card_link(cases.refund)}"]')).to_have_count(0)

    # The link opens the other conversation at the annotation's card.
    card_panel.first.locator("a.recall-open").click()
    expect(page).to_have_url(re.compile(re.escape(card_link(cases.refund_dev)) + "$"))
    expect(page.locator(f"#card-{cases.refund_dev.annotation.pk}")).to_be_visible()
