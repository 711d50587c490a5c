"""One keyboard on every page: j/k and Enter on lists, ? for the shortcuts, n/p through the list a conversation was
opened from (across the list's pages)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login
from tests.factories import make_conversations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _row_ids(page) -> list[str]:
    return page.locator("#results [data-session-id]").evaluate_all("rows => rows.map(r => r.dataset.sessionId)")


def test_j_k_enter_on_the_list_then_n_and_p_walk_the_filtered_list(page, live_server, analyst):
    make_conversations(3, environment="dev")
    make_conversations(52, environment="prod")
    login(page, live_server.url, "analyst")
    page.goto(f"{live_server.url}/conversations/?environment=prod")
    ids = _row_ids(page)
    assert len(ids) == 50

    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("j")
    expect(page.locator(f"tr[data-session-id='{ids[1]}']")).to_have_class("is-kbd-current")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/conversations/{ids[1]}/")
    expect(page.locator("[data-list-position]")).to_have_text("2 of 50 on the list")

    page.keyboard.press("n")
    page.wait_for_url(f"**/conversations/{ids[2]}/")
    page.keyboard.press("p")
    page.wait_for_url(f"**/conversations/{ids[1]}/")
    page.keyboard.press("p")
    page.wait_for_url(f"**/conversations/{ids[0]}/")
    list_nav = page.get_by_role("navigation", name="Conversation list")
    expect(list_nav.get_by_role("link", name="‹ Previous")).to_be_hidden()

    # From the last row of the page, "n" goes on to the list's next page.
    page.goto(f"{live_server.url}/conversations/?environment=prod")
    page.locator(f"tr[data-session-id='{ids[-1]}'] a.session-link").click()
    page.wait_for_url(f"**/conversations/{ids[-1]}/")
    page.keyboard.press("n")
    page.wait_for_url("**/conversations/?*after=*")
    assert "environment=prod" in page.url
    assert len(_row_ids(page)) == 2

    page.keyboard.press("?")
    expect(page.locator("#page-help")).to_be_visible()
    expect(page.locator("#page-help")).to_contain_text("Next / previous row of the list")
    page.keyboard.press("Escape")
    expect(page.locator("#page-help")).to_be_hidden()


def test_the_datasets_list_answers_j_and_question_mark(page, live_server, expert):
    from annotations.curation import services

    services.dataset_create(actor=expert, name="billing-fixes")
    login(page, live_server.url, "expert")
    page.goto(f"{live_server.url}/curation/")
    page.keyboard.press("j")
    expect(page.get_by_role("link", name="billing-fixes")).to_be_focused()
    page.keyboard.press("?")
    expect(page.locator("#page-help")).to_be_visible()


def test_a_long_model_version_is_shown_whole_on_hover(page, live_server, analyst):
    long_name = "acme-chat-2026-11-30-preview-with-a-very-long-deployment-suffix"
    make_conversations(2, model_version=long_name)
    login(page, live_server.url, "analyst")
    page.goto(f"{live_server.url}/conversations/")
    select = page.get_by_label("Model version")
    select.select_option(long_name)
    expect(select).to_have_attribute("title", long_name)
    expect(page.locator(f"td.cell-model[title='{long_name}']").first).to_be_visible()
