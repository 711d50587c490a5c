"""Insights in a real browser: bulk-tag every session matching a filter (across list pages), and click a chart point
to land on the sessions behind it."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from annotations.insights import services
from sessions.models import ConversationTag, ConversationTagging
from tests.browser.conftest import login
from tests.factories import make_conversation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _row_ids(page) -> list[int]:
    return [int(pk) for pk in page.locator("#results [data-session-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.sessionId)"
    )]


def test_tag_all_matching_reaches_every_page_and_nothing_else(page, live_server, analyst):
    prod = [make_conversation(environment="prod") for _ in range(65)]
    dev = [make_conversation(environment="dev") for _ in range(8)]
    login(page, live_server.url, "analyst")
    page.select_option("#id_environment", "prod")
    page.wait_for_url(re.compile(r"/conversations/\?environment=prod$"))
    expect(page.locator("#results [data-session-id]")).to_have_count(50)

    page.get_by_role("button", name="Tag conversations…").click()
    expect(page.locator("[data-match-count]")).to_have_text("65")
    page.get_by_label("Tag", exact=True).fill("Renewal flow")
    page.get_by_role("button", name="Tag all 65 matching").click()
    expect(page.locator(".bulk-result")).to_contain_text("Tagged 65 conversations")
    first_page = _row_ids(page)
    # The rows shown reload their chips.
    for pk in (first_page[0], first_page[-1]):
        expect(page.locator(f"#tags-{pk} .stag")).to_have_text("Renewal flow")

    page.get_by_role("link", name="Older ›").click()
    page.wait_for_url(re.compile(r"/conversations/\?environment=prod&after="))
    expect(page.locator("#results [data-session-id]")).to_have_count(15)
    for pk in _row_ids(page):
        expect(page.locator(f"#tags-{pk} .stag")).to_have_text("Renewal flow")

    tag = ConversationTag.objects.get(name="Renewal flow")
    tagged = set(ConversationTagging.objects.filter(tag=tag).values_list("conversation_id", flat=True))
    assert tagged == {c.pk for c in prod}
    assert not tagged & {c.pk for c in dev}

    # A chip filters the list by its tag.
    page.locator(f"#tags-{_row_ids(page)[0]} .stag").click()
    page.wait_for_url(re.compile(r"/conversations/\?tag=renewal-flow$"))
    expect(page.locator("#results [data-session-id]")).to_have_count(50)


def test_clicking_a_chart_point_opens_its_sessions(page, live_server, moderator):
    day = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    hits = [
        make_conversation(started_at=day + dt.timedelta(days=1, minutes=i), environment="prod",
                          feedback={1: [{"kind": "thumbs_down"}]})
        for i in range(3)
    ]
    make_conversation(started_at=day, environment="prod", feedback={1: [{"kind": "thumbs_down"}]})
    make_conversation(started_at=day + dt.timedelta(days=1), environment="prod", feedback={1: [{"kind": "copy"}]})
    make_conversation(started_at=day + dt.timedelta(days=1, hours=2), environment="dev",
                      feedback={1: [{"kind": "thumbs_down"}]})
    services.rollup_rebuild()
    login(page, live_server.url, "mod")
    page.goto(f"{live_server.url}/insights/?date_from=2026-03-01&date_to=2026-03-05&environment=prod")
    canvas = page.locator('canvas[data-chart="feedback-by-kind"]')
    expect(canvas).to_have_attribute("data-ready", "1")
    canvas.scroll_into_view_if_needed()
    # Where Chart.js drew the "Thumbs down" bar of 2026-03-03, in page coordinates.
    point = page.evaluate(
        """() => {
            const canvas = document.querySelector('canvas[data-chart="feedback-by-kind"]');
            const chart = Chart.getChart(canvas);
            const di = chart.data.datasets.findIndex((d) => d.label === "Thumbs down");
            const i = chart.data.labels.indexOf("2026-03-03");
            const { x, y } = chart.getDatasetMeta(di).data[i].getCenterPoint();
            const box = canvas.getBoundingClientRect();
            return { x: box.left + x, y: box.top + y, value: chart.data.datasets[di].data[i] };
        }"""
    )
    assert point["value"] == 3
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url(re.compile(r"/conversations/\?"))
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"started_from": ["2026-03-03"], "started_to": ["2026-03-03"], "environment": ["prod"],
                     "feedback": ["thumbs_down"]}
    expect(page.locator("#results [data-session-id]")).to_have_count(3)
    assert sorted(_row_ids(page)) == sorted(c.pk for c in hits)
    # The list's form shows the filter it landed on.
    assert page.locator("#id_feedback").input_value() == "thumbs_down"
    assert page.locator("#id_started_from").input_value() == "2026-03-03"
    assert page.locator("#id_environment").input_value() == "prod"


def test_percentages_have_their_own_axis_and_small_samples_are_hollow(page, live_server, analyst):
    day = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    for i in range(40):
        feedback = {1: [{"kind": "thumbs_down"}]} if i % 4 else None
        make_conversation(started_at=day, model_version="m-a", feedback=feedback)
    make_conversation(started_at=day, model_version="m-b", feedback={1: [{"kind": "abandon"}]})
    services.rollup_rebuild()
    login(page, live_server.url, "analyst")
    page.goto(f"{live_server.url}/insights/?date_from=2026-03-02&date_to=2026-03-02&model_a=m-a&model_b=m-b")
    page.wait_for_selector("canvas[data-chart='compare-rates'][data-ready='1']")
    axis = """(id) => {
        const chart = Chart.getChart(document.querySelector(`canvas[data-chart='${id}']`));
        return [chart.options.scales.y.title.text, chart.scales.y.max, chart.data.datasets.map(d => d.label)];
    }"""
    title, top, labels = page.evaluate(axis, "compare-rates")
    # The percentages are drawn against a % axis of their own, not squashed under per-1k values in the hundreds.
    assert title == "%" and top <= 100
    assert not any("Negative" in label for label in labels)
    title, top, _ = page.evaluate(axis, "compare-negative")
    assert title == "per 1k turns" and top > 100
    # m-b's single conversation is a small sample: its point is hollow, and the line carries a 95% band.
    fills = page.evaluate("""() => {
        const chart = Chart.getChart(document.querySelector("canvas[data-chart='compare-negative']"));
        return chart.data.datasets.filter(d => !d.band).map(d => d.backgroundColor[0]);
    }""")
    assert fills[1] == "#ffffff" and fills[0] != "#ffffff"
    assert page.evaluate("""() => Chart.getChart(document.querySelector("canvas[data-chart='compare-negative']"))
        .data.datasets.some(d => d.band && d.fill === "-1")""")
