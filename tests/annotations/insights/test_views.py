"""Insights views: dashboard (any role, fixed queries, drill-down links, CSV), bulk tagging over HTTP, chips, saved
views and the reviewer-tag spans."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.urls import reverse

from annotations import anchoring
from annotations import services as review
from annotations.insights import services
from annotations.models import Tag
from sessions.models import ConversationTag, ConversationTagging, SavedView
from sessions.tagging import services as tagging
from tests.annotations.insights.conftest import DAY1
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db
DASH = reverse("insights:dashboard")


def _link(chart: dict, series: dict, i: int) -> str:
    """A point's drill-down URL, merged as static/js/insights.js and Chart.link() do."""
    params = {**chart["link_common"], **(chart["link_x"][i] if chart["link_x"] else {}), **series["link_params"],
              **(series["point_params"][i] if series["point_params"] else {})}
    return f"{chart['link_base']}?{urlencode(params)}"


def _charts(response) -> dict:
    raw = re.search(rb'<script id="insights-charts" type="application/json">(.*?)</script>', response.content, re.S)
    return {c["id"]: c for c in json.loads(raw.group(1))}


@pytest.mark.parametrize("who", ["moderator", "expert", "analyst"])
def test_every_role_reads_the_dashboard(client, request, who, varied_sessions):
    services.rollup_rebuild()
    client.force_login(request.getfixturevalue(who))
    response = client.get(DASH, {"date_from": "2026-03-01", "date_to": "2026-03-07"})
    assert response.status_code == 200
    charts = _charts(response)
    assert {"feedback-by-kind", "negative-by-split", "rates", "compare-rates", "categories"} <= set(charts)


def test_dashboard_runs_a_fixed_number_of_queries(client, analyst, varied_sessions, django_assert_num_queries):
    services.rollup_rebuild()
    client.force_login(analyst)
    # user (with their roles; the session comes from Redis), freshness, filter choices, last day, rollup, categories,
    # reviewer tags, rubric score means
    with django_assert_num_queries(8):
        assert client.get(DASH).status_code == 200
    # The filter choices come from the cache now.
    with django_assert_num_queries(7):
        client.get(DASH, {"environment": "prod", "split": "user_role", "model_a": "m-b", "model_b": "m-a"})


def test_the_body_is_reused_until_the_rollup_changes(client, analyst, varied_sessions, django_assert_num_queries):
    services.rollup_rebuild()
    client.force_login(analyst)
    params = {"date_from": "2026-03-01", "date_to": "2026-03-07"}
    first = client.get(DASH, params)
    # user (with their roles), freshness: the session, filter choices and figures come from the cache.
    with django_assert_num_queries(2):
        again = client.get(DASH, params)
    assert _charts(again) == _charts(first)
    assert b'data-total="sessions">6<' in again.content
    make_conversation(started_at=DAY1, feedback={1: [{"kind": "copy"}]})
    services.rollup_refresh_days(days=[DAY1.date()])
    assert b'data-total="sessions">7<' in client.get(DASH, params).content


def test_default_range_fits_the_data_and_compares_the_busiest_models(client, analyst, varied_sessions):
    services.rollup_rebuild()
    client.force_login(analyst)
    body = client.get(DASH).content.decode()
    # The data spans three days: the default range is those days, not 90 days of which 87 are empty.
    first, last = DAY1.date(), (DAY1 + dt.timedelta(days=2)).date()
    assert f"Conversations started <strong>{first.isoformat()}</strong> to <strong>{last.isoformat()}</strong>" in body
    # Both model versions have 8 turns in the range; ties go by name.
    assert 'A: <span class="mono">m-a</span>' in body and 'B: <span class="mono">m-b</span>' in body


def test_chart_points_drill_down_to_exactly_their_sessions(client, analyst, varied_sessions):
    services.rollup_rebuild()
    client.force_login(analyst)
    charts = _charts(client.get(DASH, {"date_from": "2026-03-02", "date_to": "2026-03-04", "environment": "prod"}))
    kinds = charts["feedback-by-kind"]
    series = next(s for s in kinds["series"] if s["label"] == "Thumbs down")
    i = kinds["labels"].index("2026-03-02")
    assert series["data"][i] == 1
    url = _link(kinds, series, i)
    assert parse_qs(urlsplit(url).query) == {
        "started_from": ["2026-03-02"], "started_to": ["2026-03-02"], "environment": ["prod"],
        "feedback": ["thumbs_down"],
    }
    listed = client.get(url)
    assert [c.pk for c in listed.context["page"].rows] == [varied_sessions[0].pk]
    split = charts["negative-by-split"]
    m_a = next(s for s in split["series"] if s["label"] == "m-a")
    query = parse_qs(urlsplit(_link(split, m_a, i)).query)
    assert query["model_version"] == ["m-a"] and query["negative"] == ["on"]
    rows = client.get(_link(split, m_a, i)).context["page"].rows
    assert [c.pk for c in rows] == [varied_sessions[0].pk]
    assert m_a["data"][i] == pytest.approx(1000 * 2 / 8)  # thumbs down + regenerate over two 4-turn sessions


def test_csv_download_matches_the_table_and_escapes_formulas(client, analyst):
    make_conversation(started_at=DAY1, feedback={1: [{"kind": "thumbs_down", "categories": ["=HYPERLINK(1)"]}]})
    services.rollup_rebuild()
    client.force_login(analyst)
    response = client.get(reverse("insights:csv", args=["categories"]), {"date_from": "2026-03-01",
                                                                          "date_to": "2026-03-03"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [["Category", "Events"], ["'=HYPERLINK(1)", "1"]]
    page = client.get(DASH, {"date_from": "2026-03-01", "date_to": "2026-03-03"}).content.decode()
    assert '<th scope="col">Category</th><th scope="col">Events</th>' in page
    assert '<tr><th scope="row">=HYPERLINK(1)</th><td class="num">1</td></tr>' in page
    assert client.get(reverse("insights:csv", args=["nope"])).status_code == 404


def test_bad_dashboard_filters_name_the_field(client, analyst):
    client.force_login(analyst)
    response = client.get(DASH, {"date_from": "2026-03-05", "date_to": "2026-03-01"})
    assert response.status_code == 200
    assert b"To: The end date is before the start date." in response.content


def test_bulk_tag_over_http_every_match_and_selected(client, analyst):
    prod = [make_conversation(environment="prod") for _ in range(60)]
    dev = make_conversation(environment="dev")
    client.force_login(analyst)
    panel = client.get(reverse("insights:bulk_panel"), {"environment": "prod", "after": "n-1"})
    assert panel.status_code == 200 and b'data-match-count="60"' in panel.content
    response = client.post(reverse("insights:bulk_apply") + "?environment=prod",
                           {"tag": "Renewals", "op": "add:matching"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Trigger"] == '{"sessionTagsChanged": {}}' or "sessionTagsChanged" in response["HX-Trigger"]
    tag = ConversationTag.objects.get(name="Renewals")
    tagged = ConversationTagging.objects.filter(tag=tag).values_list("conversation_id", flat=True)
    assert set(tagged) == {c.pk for c in prod}
    client.post(reverse("insights:bulk_apply"), {"tag": "Renewals", "op": "add:selected", "ids": [dev.pk]})
    assert ConversationTagging.objects.filter(tag=tag, conversation=dev).exists()
    bad = client.post(reverse("insights:bulk_apply"), {"tag": "Renewals", "op": "add:selected"})
    assert bad.status_code == 400 and b"Select at least one conversation" in bad.content


def test_moderators_cannot_tag_over_http(client, moderator):
    make_conversation()
    client.force_login(moderator)
    assert client.get(reverse("insights:bulk_panel")).status_code == 403
    assert client.post(reverse("insights:bulk_apply"), {"tag": "x", "op": "add:matching"}).status_code == 403
    assert not ConversationTag.objects.exists()


def test_chips_are_out_of_band_fragments_with_escaped_names(client, analyst):
    conv = make_conversation()
    other = make_conversation()
    tag = tagging.conversation_tag_get_or_create(actor=analyst, name="<b>bold</b>")
    tagging.conversation_tag_apply_ids(actor=analyst, tag=tag, conversation_ids=[conv.pk])
    client.force_login(analyst)
    body = client.get(reverse("insights:chips"), {"ids": f"{conv.pk},{other.pk},x"}).content.decode()
    assert f'id="tags-{conv.pk}" hx-swap-oob="true"' in body and f'id="tags-{other.pk}"' in body
    assert "&lt;b&gt;bold&lt;/b&gt;" in body and "<b>" not in body


def test_list_page_shows_the_bar_to_analysts_only(client, analyst, moderator):
    make_conversation()
    client.force_login(analyst)
    page = client.get(reverse("conversations:list")).content.decode()
    assert 'id="bulk-open"' in page and 'class="row-select"' in page and "Save view" in page
    client.force_login(moderator)
    page = client.get(reverse("conversations:list")).content.decode()
    assert 'id="bulk-open"' not in page and 'class="row-select"' not in page


def test_saved_views_save_share_open_and_delete(client, analyst, moderator):
    client.force_login(analyst)
    response = client.post(reverse("insights:view_save"), {
        "name": "Negative prod", "shared": "on", "query": "environment=prod&negative=on&after=123-4&bogus=1",
    }, headers={"HX-Request": "true"})
    assert response.status_code == 200
    view = SavedView.objects.get()
    assert view.query_string == "environment=prod&negative=on" and view.shared and view.owner == analyst
    # The same name again replaces the filter.
    client.post(reverse("insights:view_save"), {"name": "Negative prod", "shared": "on", "query": "environment=dev"})
    assert SavedView.objects.get().query_string == "environment=dev"
    private = tagging.saved_view_create(actor=analyst, name="Mine", params={"q": "refund"}, shared=False)

    client.force_login(moderator)
    opened = client.get(reverse("insights:view_open", args=[view.slug]))
    assert opened.status_code == 302 and opened["Location"] == "/conversations/?environment=dev"
    listing = client.get(reverse("insights:views")).content.decode()
    assert "Negative prod" in listing and "Mine" not in listing
    assert client.post(reverse("insights:view_delete", args=[view.slug])).status_code == 403
    client.force_login(analyst)
    assert "Mine" in client.get(reverse("insights:views")).content.decode()
    client.post(reverse("insights:view_delete", args=[private.slug]))
    assert list(SavedView.objects.values_list("name", flat=True)) == ["Negative prod"]


def test_reviewer_tag_points_open_the_spans_in_the_review_workspace(client, analyst, expert):
    conv = make_conversation(started_at=DAY1, turns=[("user", "Where?"), ("assistant", "The tower is in Berlin.")])
    turn = conv.turns.get(position=1)
    tag = Tag.objects.get_or_create(name="factually incorrect", defaults={"slug": "factually-incorrect"})[0]
    start = turn.content.index("Berlin")
    annotation = review.annotation_create(
        actor=expert, turn=turn, body="It is in Paris.", tag_ids=[tag.pk], start=start, end=start + 6,
        exact="Berlin", text_hash=anchoring.text_hash(turn.content),
    )
    services.rollup_rebuild()
    client.force_login(analyst)
    chart = _charts(client.get(DASH, {"date_from": "2026-03-01", "date_to": "2026-03-03"}))["reviewer-tags"]
    series = next(s for s in chart["series"] if s["label"] == "factually incorrect")
    i = chart["labels"].index("2026-03-02")
    assert series["data"][i] == 1
    page = client.get(_link(chart, series, i)).content.decode()
    assert f'/review/c/{conv.pk}/#card-{annotation.pk}' in page and "It is in Paris." in page


def test_chips_skip_parts_that_are_not_ids(client, analyst):
    conv = make_conversation()
    client.force_login(analyst)
    response = client.get(reverse("insights:chips"), {"ids": f"¹,{conv.pk},-3,1e3"})
    assert response.status_code == 200
    assert response.content.decode().count('hx-swap-oob="true"') == 1
