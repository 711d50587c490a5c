"""The session list: filters, text search, keyset pages, htmx fragment, bad input, access, fixed query count."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotations import services
from sessions import selectors
from sessions.models import Conversation
from tests.annotations.conftest import make_conversation, span
from tests.sessions.factories import ConversationFactory

pytestmark = pytest.mark.django_db
URL = reverse("conversations:list")
ROW_ID = re.compile(r'data-session-id="(\d+)"')


def ids(response) -> list[int]:
    return [int(pk) for pk in ROW_ID.findall(response.content.decode())]


def expected_order(qs) -> list[int]:
    """The list order computed the slow, obvious way."""
    rows = list(qs.values_list("id", "started_at"))
    undated = sorted((pk for pk, started in rows if started is None), reverse=True)
    dated = [pk for pk, _ in sorted(((pk, s) for pk, s in rows if s is not None), key=lambda r: (r[1], r[0]),
                                    reverse=True)]
    return undated + dated


# --- Access ----------------------------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client):
    conv = ConversationFactory()
    for url in (URL, conv.get_absolute_url()):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role_fixture", ["moderator", "expert", "analyst"])
def test_every_role_can_browse(client, request, role_fixture):
    conv = ConversationFactory(title="Where is my parcel?")
    client.force_login(request.getfixturevalue(role_fixture))
    listing = client.get(URL)
    assert listing.status_code == 200
    assert ids(listing) == [conv.pk]
    trail = client.get(conv.get_absolute_url())
    assert trail.status_code == 200
    assert "Where is my parcel?" in trail.content.decode()


# --- Rows ------------------------------------------------------------------------------------------------------------


def test_row_shows_summary_fields_and_links_to_the_trail(moderator_client):
    conv = ConversationFactory(
        turns=[("user", "Cancel my order 1234"), ("assistant", "Done."), ("user", "thanks")],
        feedback={1: [{"kind": "thumbs_down"}, {"kind": "copy"}]},
        environment="dev", model_version="gpt-4o-2024-08", user_role="premium", source="shop-bot",
        app_version="prompt-v7", started_at=dt.datetime(2026, 2, 3, 14, 5, tzinfo=dt.UTC),
    )
    body = moderator_client.get(URL).content.decode()
    row = body[body.index(f'data-session-id="{conv.pk}"'):]
    row = row[: row.index("</tr>")]
    assert f'href="{conv.get_absolute_url()}"' in row
    for text in ("Cancel my order 1234", "dev", "gpt-4o-2024-08", "premium", "shop-bot", "2026-02-03 14:05",
                 "Thumbs down", "Copied", "prompt-v7"):
        assert text in row, text
    assert '<td class="num">3</td>' in row
    assert "Has negative feedback" in row


def test_rows_are_newest_first_with_undated_sessions_first(moderator_client):
    old, new = ConversationFactory.create_batch(2)
    undated = ConversationFactory(started_at=None)
    assert ids(moderator_client.get(URL)) == [undated.pk, new.pk, old.pk]


def test_text_is_escaped_in_the_list(moderator_client):
    ConversationFactory(turns=[("user", '<script>alert(1)</script><img src=x onerror=alert(1)> hx-get="/x"')])
    body = moderator_client.get(URL).content.decode()
    assert "<script>alert(1)" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in body


# --- Filters ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def varied():
    """Six conversations that differ in every filtered field."""
    t0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    return {
        "a": ConversationFactory(environment="prod", model_version="m-1", user_role="customer", source="bank",
                               app_version="v1", started_at=t0,
                               turns=[("user", "My card was declined at the airport"), ("assistant", "Sorry...")]),
        "b": ConversationFactory(environment="dev", model_version="m-2", user_role="agent", source="bank",
                               app_version="v2", started_at=t0 + dt.timedelta(days=1),
                               turns=[("user", "Refund for an annual plan"), ("assistant", "Refunds take 5 days")],
                               feedback={1: [{"kind": "rating", "rating": 2}]}),
        "c": ConversationFactory(environment="test", model_version="m-1", user_role="agent", source="hr",
                               app_version="v1", started_at=t0 + dt.timedelta(days=2),
                               turns=[("user", "How many holidays do I have left?"), ("assistant", "12 days")],
                               feedback={1: [{"kind": "thumbs_up"}]}),
        "d": ConversationFactory(environment="prod", model_version="m-3", user_role="customer", source="hr",
                               app_version="v3", started_at=t0 + dt.timedelta(days=3),
                               turns=[("user", "Refund my monthly plan"), ("assistant", "No.")],
                               feedback={1: [{"kind": "correction", "correction": "Yes, within 14 days."}]}),
        "e": ConversationFactory(environment="prod", model_version="m-2", user_role="guest", source="shop",
                               app_version="v2", started_at=t0 + dt.timedelta(days=4),
                               turns=[("user", "Where is my parcel"), ("assistant", "In transit")],
                               feedback={1: [{"kind": "regenerate"}, {"kind": "thumbs_up"}]}),
        "f": ConversationFactory(environment="dev", model_version="m-1", user_role="guest", source="shop",
                               app_version="v1", started_at=None,
                               turns=[("user", "annual report template"), ("assistant", "Here it is")]),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "fedcba"),
        ({"environment": "prod"}, "eda"),
        ({"model_version": "m-1"}, "fca"),
        ({"user_role": "agent"}, "cb"),
        ({"source": "hr"}, "dc"),
        ({"app_version": "v2"}, "eb"),
        ({"started_from": "2026-03-02", "started_to": "2026-03-04"}, "dcb"),
        ({"started_from": "2026-03-04"}, "ed"),
        ({"started_to": "2026-03-01"}, "a"),
        ({"feedback": "thumbs_up"}, "ec"),
        ({"feedback": "rating"}, "b"),
        ({"negative": "on"}, "edb"),
        ({"q": "refund"}, "db"),
        ({"q": '"annual plan"'}, "b"),
        ({"q": "annual -refund"}, "f"),
        ({"q": "refund OR parcel"}, "edb"),
        ({"environment": "prod", "negative": "on", "q": "refund"}, "d"),
        ({"model_version": "m-1", "user_role": "guest", "environment": "dev"}, "f"),
        ({"source": "bank", "feedback": "thumbs_up"}, ""),
    ],
)
def test_filters(moderator_client, varied, params, expected):
    response = moderator_client.get(URL, params)
    assert response.status_code == 200
    assert ids(response) == [varied[key].pk for key in expected]
    if not expected:
        assert "No conversation matches these filters." in response.content.decode()


def test_filter_choices_come_from_the_data(moderator_client, varied):
    body = moderator_client.get(URL).content.decode()
    select = body[body.index('name="model_version"'):]
    select = select[: select.index("</select>")]
    assert re.findall(r'<option value="([^"]*)"', select) == ["", "m-1", "m-2", "m-3"]
    assert selectors.conversation_filter_choices() == selectors.FilterChoices(
        model_versions=["m-1", "m-2", "m-3"], user_roles=["agent", "customer", "guest"], sources=["bank", "hr", "shop"]
    )


def test_a_value_not_among_the_choices_still_filters_and_stays_selected(moderator_client, varied):
    response = moderator_client.get(URL, {"model_version": "retired-model"})
    assert ids(response) == []
    assert '<option value="retired-model" selected>retired-model</option>' in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"started_from": "2026-13-45"}, "Started from: Enter a valid date."),
        ({"started_from": "2026-03-05", "started_to": "2026-03-01"}, "Started to: The end date is before the start"),
        ({"after": "yesterday"}, "Next page position: Invalid page position"),
        ({"before": "12x-3"}, "Previous page position: Invalid page position"),
        ({"feedback": "shrug"}, "Feedback type: Select a valid choice."),
        ({"environment": "staging"}, "Environment: Select a valid choice."),
    ],
)
def test_bad_filter_input_gets_a_clear_error_naming_the_field(moderator_client, varied, params, message):
    response = moderator_client.get(URL, params)
    assert response.status_code == 200
    body = response.content.decode()
    assert "These filters cannot be applied" in body
    assert message in body.replace("&#x27;", "'")
    assert ids(response) == []


# --- Pages -----------------------------------------------------------------------------------------------------------


def _links(body: str) -> dict[str, str]:
    links = {}
    for rel, label in (("next", "Older"), ("prev", "Newer")):
        match = re.search(rf'rel="{rel}" href="([^"]+)"', body)
        if match:
            links[label] = match.group(1).replace("&amp;", "&")
    return links


def test_keyset_pages_cover_everything_once_forwards_and_backwards(moderator_client):
    tie = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    ConversationFactory.create_batch(60)
    ConversationFactory.create_batch(30, started_at=tie)  # equal start times: the id breaks the tie
    for _ in range(25):
        ConversationFactory(started_at=None)
    expected = expected_order(Conversation.objects.all())
    assert len(expected) == 115

    pages, url = [], URL
    while True:
        response = moderator_client.get(url)
        pages.append(ids(response))
        links = _links(response.content.decode())
        if "Older" not in links:
            break
        url = links["Older"]
    assert [len(p) for p in pages] == [50, 50, 15]
    assert sum(pages, []) == expected
    assert "15 conversations shown of many" in response.content.decode()

    # And back again from the last page with the "Newer" links.
    back = [ids(response)]
    while "Newer" in (links := _links(response.content.decode())):
        response = moderator_client.get(links["Newer"])
        back.append(ids(response))
    assert back[::-1] == pages


def test_no_count_over_the_table(moderator_client):
    ConversationFactory.create_batch(3)
    with CaptureQueriesContext(connection) as ctx:
        moderator_client.get(URL, {"q": "password", "negative": "on", "after": "n-999999"})
    table = Conversation._meta.db_table
    for query in ctx.captured_queries:
        assert not re.search(rf'count\([^)]*\)\s+FROM\s+"?{table}"?', query["sql"], re.I), query["sql"]


@pytest.mark.parametrize(
    "filters",
    [
        selectors.ConversationFilters(),
        selectors.ConversationFilters(q="refund"),
        selectors.ConversationFilters(feedback_kind="thumbs_down", environment="prod"),
        selectors.ConversationFilters(model_version="m-1", user_role="guest", negative_only=True),
        selectors.ConversationFilters(app_version="v2", started_from=dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)),
        selectors.ConversationFilters(app_version="v1", environment="dev", q="hello"),
    ],
)
def test_every_plan_agrees_with_the_obvious_order(monkeypatch, filters):
    """Walk all pages with a tiny index window, so the rare-match branch and its gates are exercised too."""
    monkeypatch.setattr(selectors, "WINDOW", 4)
    for i in range(70):
        ConversationFactory(
            started_at=None if i % 9 == 0 else dt.datetime(2026, 1, 5, 9, i % 40, tzinfo=dt.UTC),
            environment=("prod", "dev")[i % 2], model_version=("m-1", "m-2", "m-3")[i % 3],
            user_role=("guest", "agent")[i % 5 == 0], app_version=("v1", "v2")[i % 7 == 0],
            turns=[("user", ("refund please", "hello")[i % 4 != 0]), ("assistant", "ok")],
            feedback={1: [{"kind": "thumbs_down"}]} if i % 6 == 0 else None,
        )
    qs = Conversation.objects.all()
    if filters.q:
        qs = qs.filter(title__icontains=filters.q)
    for name in ("environment", "model_version", "user_role", "app_version"):
        if getattr(filters, name):
            qs = qs.filter(**{name: getattr(filters, name)})
    if filters.feedback_kind:
        qs = qs.filter(feedback_kinds__contains=[filters.feedback_kind])
    if filters.negative_only:
        qs = qs.filter(has_negative_feedback=True)
    if filters.started_from:
        qs = qs.filter(started_at__gte=filters.started_from)
    expected = expected_order(qs)
    assert expected, "the data set must exercise the filter"

    seen, cursor, pages = [], None, []
    while True:
        page = selectors.conversation_list(filters=filters, after=cursor, page_size=7)
        pages.append(page)
        seen += [row.pk for row in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    for earlier, later in zip(pages, pages[1:], strict=False):
        back = selectors.conversation_list(filters=filters, before=later.prev_cursor, page_size=7)
        assert [r.pk for r in back.rows] == [r.pk for r in earlier.rows]


# --- htmx ------------------------------------------------------------------------------------------------------------


def test_htmx_request_gets_only_the_results_fragment(moderator_client, varied):
    response = moderator_client.get(URL, {"environment": "dev"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="results"')
    assert "<html" not in body and 'name="model_version"' not in body
    assert ids(response) == [varied["f"].pk, varied["b"].pk]
    assert "HX-Request" in response["Vary"]


def test_history_restore_gets_the_whole_page(moderator_client, varied):
    response = moderator_client.get(
        URL, {"environment": "dev"}, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    body = response.content.decode()
    assert "<html" in body and 'id="results"' in body


def test_page_links_keep_filters_and_href(moderator_client):
    ConversationFactory.create_batch(55, environment="test")
    body = moderator_client.get(URL, {"environment": "test", "q": ""}).content.decode()
    link = re.search(r'<a class="button" rel="next" href="([^"]+)"\s+hx-get="([^"]+)"', body)
    assert link and link.group(1) == link.group(2)
    assert "environment=test" in link.group(1) and "after=" in link.group(1)


# --- Query count -----------------------------------------------------------------------------------------------------


# the user with their groups (roles; the session comes from Redis), filter choices, the page.
LIST_QUERIES = 3


@pytest.mark.parametrize("size", [3, 40])
@pytest.mark.parametrize(
    "params",
    [{}, {"q": "password", "environment": "prod"}, {"negative": "on", "feedback": "thumbs_down"}],
)
def test_list_runs_a_fixed_number_of_queries(client, moderator, django_assert_num_queries, size, params):
    for i in range(size):
        ConversationFactory(feedback={1: [{"kind": "thumbs_down"}]} if i % 2 else None)
    client.force_login(moderator)
    with django_assert_num_queries(LIST_QUERIES):
        response = client.get(URL, params)
    assert len(ids(response)) == min(size if not params.get("negative") else size // 2, 50)
    # The htmx fragment skips the drop-down options.
    with django_assert_num_queries(LIST_QUERIES - 1):
        client.get(URL, params, headers={"HX-Request": "true"})


@pytest.mark.django_db
def test_reviewed_column_and_filter_follow_the_first_comment(client, moderator):
    reviewed = make_conversation(replies=["A reply to comment on."])
    untouched = make_conversation(replies=["A reply nobody looked at."], external_id="conv-2")
    turn = reviewed.turns.filter(role="assistant").get()
    services.annotation_create(actor=moderator, turn=turn, body="looked at", **span(turn, "reply"))
    reviewed.refresh_from_db()
    assert reviewed.reviewed_at is not None

    client.force_login(moderator)
    page = client.get("/conversations/", {"reviewed": "yes"}).content.decode()
    assert f'data-session-id="{reviewed.pk}"' in page and f'data-session-id="{untouched.pk}"' not in page
    assert "Reviewed</span>" in page
    page = client.get("/conversations/", {"reviewed": "no"}).content.decode()
    assert f'data-session-id="{untouched.pk}"' in page and f'data-session-id="{reviewed.pk}"' not in page
    assert "Reviewed: Select a valid choice" in client.get("/conversations/", {"reviewed": "maybe"}).content.decode()


def test_saved_filters_are_described_in_the_filter_forms_words(client, analyst):
    from django.http import QueryDict

    from sessions.forms import describe_filters
    from sessions.tagging import services as tagging

    params = QueryDict("environment=prod&negative=on&reviewed=no&model_version=gpt-4o&after=1-2&bogus=1&q=")
    assert describe_filters(params) == [
        ("Environment", "Production"), ("Has negative feedback", "yes"), ("Reviewed", "Not reviewed yet"),
        ("Model version", "gpt-4o"),
    ]
    tagging.saved_view_create(actor=analyst, name="Prod complaints", params=params, shared=True)
    client.force_login(analyst)
    page = client.get(reverse("insights:views")).content.decode()
    assert "Environment: Production" in page and "environment = prod" not in page


# --- Live ---------------------------------------------------------------------------------------------------------


def test_recently_changed_conversations_are_marked_live_and_filterable(moderator_client):
    old = ConversationFactory()
    fresh = ConversationFactory()
    Conversation.objects.filter(pk=old.pk).update(updated_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    page = moderator_client.get(URL).content.decode()
    assert page.count('class="badge live"') == 1
    live_row = page[page.index(f'data-session-id="{fresh.pk}"'):]
    assert live_row.index('class="badge live"') < live_row.index("</tr>")
    assert ids(moderator_client.get(URL, {"live": "on"})) == [fresh.pk]
