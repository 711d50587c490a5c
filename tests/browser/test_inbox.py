"""Mentions and the inbox in Debian's chromium: "@" in a reply offers users in a listbox (arrows, Enter, Escape), the
mention puts an item in that user's inbox, and their header count, open in a second browser context, goes up without
a reload; the item opens the review page focused on the card."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from playwright.sync_api import Browser, expect

from annotations import services
from annotations.inbox.models import Notification, NotificationKind
from feedbackhub import roles
from sessions.models import TurnRole
from tests.annotations.conftest import make_conversation, span
from tests.browser.conftest import PageProblems, _watch, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPLY = "The Eiffel Tower is in Berlin. It was completed in 1889 and is 330 metres tall."


@pytest.fixture(autouse=True)
def taxonomy(transactional_db) -> None:
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)


@pytest.fixture(autouse=True)
def _quick_poll(settings):
    # The header polls every 15 s in use; a short interval keeps the test short (it waits for the count, whenever
    # the poll comes).
    settings.INBOX_POLL_SECONDS = 1


def make_user(username: str, role: str) -> User:
    user = User.objects.create_user(username=username, password="pw-for-tests-only")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def test_a_mention_in_a_reply_raises_the_mentioned_users_count_without_a_reload(
    page, browser: Browser, live_server, moderator, expert
):
    ann = make_user("ann", roles.DOMAIN_EXPERT)
    make_user("annika", roles.MODERATOR)
    conversation = make_conversation(replies=[REPLY])
    turn = conversation.turns.get(role=TurnRole.ASSISTANT)
    annotation = services.annotation_create(actor=expert, turn=turn, body="Wrong city", **span(turn, "Berlin"))

    # Ann, in a browser of her own, on the conversation list: nothing unread.
    ann_context = browser.new_context(viewport={"width": 1400, "height": 900})
    ann_context.set_default_timeout(10_000)
    ann_problems = PageProblems()
    ann_page = ann_context.new_page()
    _watch(ann_page, ann_problems)
    try:
        login(ann_page, live_server.url, "ann")
        ann_page.goto(f"{live_server.url}/conversations/")
        badge = ann_page.locator("#inbox-nav .inbox-link")
        expect(badge).to_have_attribute("data-unread", "0")
        expect(ann_page.locator("#inbox-nav .inbox-count")).to_have_count(0)

        # The moderator replies on the expert's card and mentions Ann through the listbox.
        login(page, live_server.url, "mod")
        page.goto(f"{live_server.url}/review/c/{conversation.pk}/")
        page.wait_for_selector("#review[data-ready='1']")
        card = page.locator(f"#card-{annotation.pk}")
        card.locator(".card-head").click()
        box = card.get_by_label("Reply")
        box.click()
        box.press_sequentially("Please check, @an")
        listbox = card.get_by_role("listbox", name="Mention a user")
        expect(listbox.get_by_role("option")).to_have_count(2)
        expect(listbox.get_by_role("option").nth(0)).to_have_attribute("aria-selected", "true")
        expect(box).to_have_attribute("aria-activedescendant", listbox.get_by_role("option").nth(0).get_attribute("id"))
        box.press("ArrowDown")
        expect(listbox.get_by_role("option", name="@annika")).to_have_attribute("aria-selected", "true")
        box.press("Escape")  # closes the list only: the text stays
        expect(listbox).to_have_count(0)
        expect(box).to_have_value("Please check, @an")
        box.press_sequentially("n")
        expect(listbox.get_by_role("option")).to_have_count(2)
        box.press("ArrowDown")
        box.press("ArrowUp")
        box.press("Enter")
        expect(box).to_have_value("Please check, @ann ")
        expect(listbox).to_have_count(0)
        box.press_sequentially("is this Paris?")
        card.get_by_role("button", name="Reply").click()
        mention = card.locator(".thread .mention")
        expect(mention).to_have_text("@ann")

        [item] = Notification.objects.filter(recipient=ann)
        assert item.kind == NotificationKind.MENTION and item.url.endswith(f"#card-{annotation.pk}")
        # The expert's thread got a reply: the expert is told too; the moderator is not told of their own reply.
        assert Notification.objects.filter(recipient=expert, kind=NotificationKind.REPLY).count() == 1
        assert not Notification.objects.filter(recipient=moderator).exists()

        # Ann's header, never reloaded, shows the item; her inbox lists it and opens the focused card.
        expect(ann_page.locator("#inbox-nav .inbox-count")).to_have_text("1", timeout=20_000)
        expect(badge).to_have_attribute("aria-label", "Inbox, 1 unread")
        badge.click()
        entry = ann_page.locator(f"#item-{item.pk}")
        expect(entry).to_contain_text("mod mentioned you in a reply")
        expect(entry.locator(".mention.is-me")).to_have_text("@ann")
        entry.locator(".inbox-open").click()
        ann_page.wait_for_selector("#review[data-ready='1']")
        expect(ann_page.locator(f"#card-{annotation.pk}")).to_be_focused()
        expect(ann_page.locator("#inbox-nav .inbox-count")).to_have_count(0)
        assert not ann_problems, f"browser problems: {ann_problems}"
    finally:
        ann_context.close()
