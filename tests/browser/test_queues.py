"""Review queues in Debian's chromium: a moderator builds a queue of 4 replies from a list filter (2 blind reviews
per reply, a two-field rubric, two reviewers); each reviewer works through it keyboard only (highlight, tag,
score, complete and next) without seeing the other's work; the queue page shows the agreement figures worked out
by hand below; an expert adjudicates a disagreement and the gold annotation shows on the review page."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from playwright.sync_api import Page, expect

from annotations import services as review
from annotations.models import Annotation, Score, Tag
from annotations.queues.models import QueueItem, ReviewQueue
from feedbackhub import roles
from sessions.models import Environment
from tests.annotations.conftest import make_conversation
from tests.browser.conftest import login
from tests.conftest import _user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What each reviewer gives the 4 items, in queue order: (characters highlighted from the start, helpfulness, tone).
WORK = {
    "rev1": [(5, "4", "g"), (5, "4", "g"), (5, "2", "r"), (5, "2", "r")],
    "rev2": [(5, "4", "g"), (5, "3", "g"), (5, "2", "r"), (3, "2", "n")],
}
# Worked by hand (docs/queues.md has the formulas):
# helpfulness, interval: rev1 4 4 2 2, rev2 4 3 2 2. Values 2 (x4), 3 (x1), 4 (x3); n = 8.
#   Observed: the pair (4, 3) of item 2 counts both ways, (4 - 3)^2 * 2 = 2.
#   Expected: sum n_c n_k (c - k)^2 = 2 * (4*1*1 + 4*3*4 + 1*3*1) = 110.  alpha = 1 - 7 * 2 / 110 = 0.873.
# tone, nominal: rev1 good good rude rude, rev2 good good rude neutral. good 4, rude 3, neutral 1; n = 8.
#   Observed: (rude, neutral) both ways = 2. Expected: 2 * (4*3 + 4*1 + 3*1) = 38.  alpha = 1 - 7 * 2 / 38 = 0.632.
# tag "factually incorrect" on every item by both: no variation, alpha undefined (shown as a dash).
# Spans: 8 of rev1 and rev2's 4 + 4; 3 identical: exact F1 = 2 * 3 / 8 = 0.750.
#   Code points: rev1 covers 5 * 4 = 20, rev2 5 * 3 + 3 = 18, shared 18: overlap F1 = 36 / 38 = 0.947.
EXPECTED = {"helpfulness": "0.873", "tone": "0.632", "exact": "0.750", "overlap": "0.947"}


@pytest.fixture(autouse=True)
def taxonomy(transactional_db) -> None:
    importlib.import_module("annotations.migrations.0002_seed_tags").seed(apps, None)


@pytest.fixture
def people(transactional_db):
    return {
        "mod": _user("mod", roles.MODERATOR),
        "rev1": _user("rev1", roles.DOMAIN_EXPERT),
        "rev2": _user("rev2", roles.MODERATOR),
        "expert": _user("expert", roles.DOMAIN_EXPERT),
    }


@pytest.fixture
def setup(people):
    review.score_config_save(actor=people["mod"], key="helpfulness", name="Helpfulness", kind="numeric",
                             minimum=1, maximum=5, step=1)
    review.score_config_save(actor=people["mod"], key="tone", name="Tone", kind="categorical",
                             options=["good", "neutral", "rude"])
    for i in range(2):
        c = make_conversation(replies=[f"Reply {i}a is fine.", f"Reply {i}b is wrong."], external_id=f"prod-{i}")
        c.environment = Environment.PROD
        c.save(update_fields=["environment"])
    other = make_conversation(replies=["Other reply."], external_id="dev-0")
    other.environment = Environment.DEV
    other.save(update_fields=["environment"])
    return people


def build_queue(page: Page, url: str) -> ReviewQueue:
    login(page, url, "mod")
    page.goto(f"{url}/conversations/?environment=prod")
    page.get_by_role("link", name="Review queue from this filter").click()
    expect(page.get_by_label("List filter (query string)")).to_have_value("environment=prod")
    page.get_by_label("Name").fill("Prod replies")
    page.get_by_label("Reviews per reply").select_option("2")
    page.get_by_label("Helpfulness (v1)").check()
    page.get_by_label("Tone (v1)").check()
    page.get_by_label("rev1").check()
    page.get_by_label("rev2").check()
    page.get_by_role("button", name="Create queue").click()
    expect(page.get_by_role("heading", name="Prod replies")).to_be_visible()
    expect(page.locator("[data-progress]")).to_contain_text("0 of 8 reviews done")
    return ReviewQueue.objects.get(name="Prod replies")


def work_through(page: Page, url: str, username: str, queue: ReviewQueue, tag: Tag) -> None:
    login(page, url, username)
    page.goto(f"{url}/queues/")
    start = page.get_by_role("link", name="Start")
    start.focus()
    page.keyboard.press("Enter")
    for index, (chars, helpful, tone) in enumerate(WORK[username]):
        page.wait_for_selector("#review[data-ready='1']")
        item = QueueItem.objects.get(queue=queue, position=index + 1)
        reply = page.locator(f"#turn-{item.turn_id}")
        expect(reply).to_be_focused()
        # Blind: nothing of the other reviewer on this reply, neither cards nor scores.
        expect(page.locator(f"#cards-{item.turn_id} .card")).to_have_count(0)
        expect(page.locator(f"#scores-{item.turn_id} .scores-table")).to_have_count(0)
        for _ in range(chars):
            page.keyboard.press("Shift+ArrowRight")
        expect(page.get_by_role("toolbar", name="Selected text")).to_be_visible()
        page.keyboard.press(tag.hotkey)
        expect(page.locator(f"#cards-{item.turn_id} .card")).to_have_count(1)
        page.keyboard.press("Shift+R")
        expect(page.get_by_label("Helpfulness", exact=True)).to_be_focused()
        page.keyboard.type(helpful)
        page.keyboard.press("Tab")
        expect(page.get_by_label("Tone", exact=True)).to_be_focused()
        page.keyboard.press(tone)
        page.keyboard.press("Control+Enter")
        if index < 3:
            expect(page.locator("#queue-bar")).not_to_have_attribute("data-turn", str(item.turn_id))
    expect(page.get_by_role("status")).to_contain_text("Nothing left for you in this queue")


def test_two_blind_reviewers_agreement_and_adjudication(browser, live_server, setup):
    url = live_server.url
    tag = Tag.objects.get(slug="factually-incorrect")
    contexts = []
    try:
        def new_page() -> Page:
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            ctx.set_default_timeout(10_000)
            contexts.append(ctx)
            return ctx.new_page()

        queue = build_queue(new_page(), url)
        assert QueueItem.objects.filter(queue=queue).count() == 4
        for username in ("rev1", "rev2"):
            work_through(new_page(), url, username, queue, tag)

        assert Score.objects.filter(is_gold=False).count() == 16
        assert Annotation.objects.filter(is_gold=False).count() == 8

        page = new_page()
        login(page, url, "mod")
        page.goto(f"{url}/queues/{queue.pk}/")
        expect(page.locator("[data-progress]")).to_contain_text("8 of 8 reviews done (100 %)")
        expect(page.locator("tr[data-field='helpfulness'] .alpha")).to_have_text(EXPECTED["helpfulness"])
        expect(page.locator("tr[data-field='helpfulness'] .n")).to_have_text("4")
        expect(page.locator("tr[data-field='tone'] .alpha")).to_have_text(EXPECTED["tone"])
        expect(page.locator(f"tr[data-tag='{tag.name}'] .alpha")).to_have_text("—")
        expect(page.locator("[data-spans] .exact")).to_have_text(EXPECTED["exact"])
        expect(page.locator("[data-spans] .overlap")).to_have_text(EXPECTED["overlap"])
        report = page.request.get(f"{url}/queues/{queue.pk}/agreement.json").json()
        assert {f["key"]: f["alpha"] for f in report["fields"]} == {"helpfulness": 0.8727, "tone": 0.6316}

        # The expert adjudicates item 2 (the reviewers gave helpfulness 4 and 3): rev1's highlight, helpfulness 4.
        page = new_page()
        login(page, url, "expert")
        page.goto(f"{url}/queues/{queue.pk}/")
        second = QueueItem.objects.get(queue=queue, position=2)
        page.locator(f"a[href='/queues/{queue.pk}/items/{second.pk}/adjudicate']").click()
        rev1_column = page.get_by_role("region", name="Work of rev1")
        expect(page.get_by_role("region", name="Work of rev2")).to_be_visible()
        rev1_column.get_by_role("checkbox").check()
        page.get_by_label("Helpfulness", exact=True).fill("4")
        expect(page.get_by_label("Tone", exact=True)).to_have_value("good")  # they agreed: prefilled
        page.get_by_label("Why (kept in the audit trail)").fill("rev1's reading")
        page.get_by_role("button", name="Save gold annotation").click()
        page.get_by_role("link", name=f"{second.conversation_id} · reply {second.turn_id}").click()
        page.wait_for_selector("#review[data-ready='1']")
        gold_card = page.locator(f"#cards-{second.turn_id} .card:has(.badge-gold)")
        expect(gold_card).to_have_count(1)
        expect(gold_card.locator(".chip")).to_have_text(tag.name)
        expect(page.locator(f"#scores-{second.turn_id} tr.is-gold")).to_have_count(2)
        expect(page.locator(f"#turn-{second.turn_id} mark").first).to_be_visible()
        assert Annotation.objects.get(is_gold=True).exact == "Reply"
    finally:
        for ctx in contexts:
            ctx.close()
