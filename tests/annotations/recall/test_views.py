"""The semantic search page and the review workspace's "Similar past cases" panels, on really embedded cases."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotations.models import Annotation
from annotations.recall import embedding
from annotations.recall import services as recall_services
from annotations.recall.models import FeedbackItem
from tests.annotations.recall.recall_cases import REFUND_QUERY, build_cases, make_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def cases(moderator, expert):
    return build_cases(moderator, expert)


def _item_turns(html: str) -> list[str]:
    """The review links of the cases on a page, in order."""
    return re.findall(r'class="recall-open" href="([^"]+)"', html)


def test_pages_need_login(client):
    for url in ("/recall/search/", "/recall/similar/turn/1/", "/recall/similar/annotation/1/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_every_role_can_search(client, analyst, cases):
    client.force_login(analyst)
    response = client.get("/recall/search/", {"q": REFUND_QUERY})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'aria-current="page">Search feedback</a>' in html
    links = _item_turns(html)
    refund = cases.refund
    assert links[0] == f"/review/c/{refund.conversation.pk}/#card-{refund.annotation.pk}"
    first = html[html.index('class="recall-case"'):]
    first = first[: first.index('class="recall-open"')]
    assert "% similar" in first
    assert "Resolved" in first
    assert "factually incorrect" in first
    assert "Correction approved" in first
    assert "Annual plans can be refunded within 30 days" in first


def test_empty_search_shows_a_prompt_not_results(moderator_client, cases):
    html = moderator_client.get("/recall/search/").content.decode()
    assert "recall-case" not in html
    assert "Type what went wrong" in html


def test_htmx_gets_only_the_results_fragment(moderator_client, cases):
    response = moderator_client.get("/recall/search/", {"q": REFUND_QUERY}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="recall-results"')
    assert "<form" not in html
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_filters_apply(moderator_client, cases):
    dev = moderator_client.get("/recall/search/", {"q": REFUND_QUERY, "environment": "dev"}).content.decode()
    assert _item_turns(dev) == [f"/review/c/{cases.refund_dev.conversation.pk}/#card-{cases.refund_dev.annotation.pk}"]
    tone = moderator_client.get("/recall/search/", {"q": REFUND_QUERY, "tag": "wrong-tone"}).content.decode()
    assert _item_turns(tone) == [f"/review/c/{cases.tone.conversation.pk}/#card-{cases.tone.annotation.pk}"]
    resolved = moderator_client.get("/recall/search/", {"q": REFUND_QUERY, "resolved": "on"}).content.decode()
    assert f"#card-{cases.tone.annotation.pk}" not in resolved
    assert len(_item_turns(resolved)) == 4
    none = moderator_client.get("/recall/search/", {"q": REFUND_QUERY, "date_from": "2999-01-01"}).content.decode()
    assert "No feedback matches these filters." in none


def test_bad_filters_name_the_field(moderator_client, cases):
    response = moderator_client.get(
        "/recall/search/", {"q": REFUND_QUERY, "date_from": "2026-02-01", "date_to": "2026-01-01"}
    )
    html = response.content.decode()
    assert "To: The end date is before the start date." in html
    assert "recall-case" not in html
    html = moderator_client.get("/recall/search/", {"q": "x", "tag": "no-such-tag"}).content.decode()
    assert "Tag: Select a valid choice." in html


def test_turn_panel_shows_other_replies_first_the_near_duplicate(moderator_client, cases):
    response = moderator_client.get(f"/recall/similar/turn/{cases.refund.turn.pk}/")
    assert response.status_code == 200
    links = _item_turns(response.content.decode())
    assert links[0] == f"/review/c/{cases.refund_dev.conversation.pk}/#card-{cases.refund_dev.annotation.pk}"
    # The reply's own feedback is not a past case of it.
    assert all(f"/review/c/{cases.refund.conversation.pk}/" not in link for link in links)


def test_annotation_panel_excludes_the_annotation(moderator_client, cases):
    response = moderator_client.get(f"/recall/similar/annotation/{cases.refund.annotation.pk}/")
    links = _item_turns(response.content.decode())
    assert links[0] == f"/review/c/{cases.refund_dev.conversation.pk}/#card-{cases.refund_dev.annotation.pk}"
    assert f"#card-{cases.refund.annotation.pk}" not in "".join(links)
    assert moderator_client.get("/recall/similar/annotation/999999/").status_code == 404
    assert moderator_client.get("/recall/similar/turn/999999/").status_code == 404


def test_review_page_offers_both_panels(moderator_client, cases):
    html = moderator_client.get(f"/review/c/{cases.refund.conversation.pk}/").content.decode()
    assert f'hx-get="/recall/similar/turn/{cases.refund.turn.pk}/"' in html
    assert f'hx-get="/recall/similar/annotation/{cases.refund.annotation.pk}/"' in html
    assert "css/recall.css" in html


def test_case_text_is_escaped(moderator_client, moderator, expert):
    cases = build_cases(moderator, expert, embed=False)

    Annotation.objects.filter(pk=cases.refund.annotation.pk).update(body='<img src=x onerror="alert(1)"> refund')
    recall_services.feedback_item_sync_for_annotation(annotation_id=cases.refund.annotation.pk)
    embedding.embeddings_embed_pending()
    html = moderator_client.get("/recall/search/", {"q": REFUND_QUERY}).content.decode()
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; refund" in html
    assert "<img src=x" not in html


def test_search_query_count_does_not_grow_with_results(moderator_client, moderator, cases):
    def search() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            html = moderator_client.get("/recall/search/", {"q": REFUND_QUERY}).content.decode()
        return len(captured.captured_queries), html.count('class="recall-case"')

    queries, shown = search()
    for i in range(6):
        case = make_case(moderator=moderator, external_id=f"more-refunds-{i}", question=f"Refund question {i}?",
                     reply=f"Refunds take {i + 2} weeks.", quote="Refunds", comment=f"Refund note {i}.",
                     tag="factually-incorrect")
        recall_services.feedback_item_sync_for_annotation(annotation_id=case.annotation.pk)
    embedding.embeddings_embed_pending()
    more_queries, more_shown = search()
    assert more_shown > shown
    assert more_queries == queries <= 14


def test_annotation_panel_before_its_item_exists_says_so(moderator_client, moderator, expert):
    cases = build_cases(moderator, expert, embed=False)

    FeedbackItem.objects.filter(annotation_id=cases.tone.annotation.pk).delete()
    html = moderator_client.get(f"/recall/similar/annotation/{cases.tone.annotation.pk}/").content.decode()
    assert "still being indexed" in html
