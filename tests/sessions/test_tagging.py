"""Conversation tags: bulk over every match of a list filter (set-based), selected rows, removal, permissions, and the
list's tag filter."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sessions.models import ConversationTag, ConversationTagging
from sessions.selectors import ConversationFilters, conversation_list
from sessions.tagging import selectors
from sessions.tagging import services as tagging
from tests.sessions.factories import ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def many():
    """120 prod sessions (more than two list pages) and 30 dev ones."""
    prod = [ConversationFactory(environment="prod") for _ in range(120)]
    dev = [ConversationFactory(environment="dev") for _ in range(30)]
    return prod, dev


def _tagged(tag: ConversationTag) -> set[int]:
    return set(ConversationTagging.objects.filter(tag=tag).values_list("conversation_id", flat=True))


def test_tag_all_matching_tags_every_match_in_one_statement_and_nothing_else(analyst, many):
    prod, dev = many
    tag = tagging.conversation_tag_get_or_create(actor=analyst, name="Pricing bug")
    filters = ConversationFilters(environment="prod")
    with CaptureQueriesContext(connection) as ctx:
        result = tagging.conversation_tag_apply_matching(actor=analyst, tag=tag, filters=filters)
    inserts = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and "ON CONFLICT" in inserts[0]
    assert result.changed == 120
    assert _tagged(tag) == {c.pk for c in prod}
    assert ConversationTagging.objects.filter(tag=tag).first().tagged_by == analyst
    # Again: nothing new, nothing duplicated.
    assert tagging.conversation_tag_apply_matching(actor=analyst, tag=tag, filters=filters).changed == 0
    assert ConversationTagging.objects.filter(tag=tag).count() == 120


def test_remove_matching_and_selected_rows(analyst, many):
    prod, dev = many
    tag = tagging.conversation_tag_get_or_create(actor=analyst, name="review later")
    ids = [prod[0].pk, dev[0].pk, dev[1].pk, 10**12]
    tagging.conversation_tag_apply_ids(actor=analyst, tag=tag, conversation_ids=ids)
    assert _tagged(tag) == {prod[0].pk, dev[0].pk, dev[1].pk}
    dev_only = ConversationFilters(environment="dev")
    removed = tagging.conversation_tag_remove_matching(actor=analyst, tag=tag, filters=dev_only)
    assert removed.changed == 2
    assert _tagged(tag) == {prod[0].pk}
    tagging.conversation_tag_apply_ids(actor=analyst, tag=tag, conversation_ids=[prod[0].pk], remove=True)
    assert _tagged(tag) == set()


def test_list_filters_by_tag_across_pages_and_counts_on_demand(analyst, many):
    prod, dev = many
    tag = tagging.conversation_tag_get_or_create(actor=analyst, name="Onboarding")
    tagging.conversation_tag_apply_ids(actor=analyst, tag=tag, conversation_ids=[c.pk for c in prod[:70]] + [dev[0].pk])
    filters = ConversationFilters(session_tag=tag.slug)
    first = conversation_list(filters=filters)
    second = conversation_list(filters=filters, after=first.next_cursor)
    shown = [c.pk for c in first.rows + second.rows]
    assert sorted(shown) == sorted([c.pk for c in prod[:70]] + [dev[0].pk])
    assert second.next_cursor is None
    assert selectors.count_matching(filters) == 71
    assert selectors.count_matching(ConversationFilters(session_tag=tag.slug, environment="dev")) == 1
    assert selectors.count_matching(ConversationFilters(session_tag="no-such-tag")) == 0


def test_tag_names_are_reused_case_insensitively(analyst):
    a = tagging.conversation_tag_get_or_create(actor=analyst, name="  Churn   risk ")
    b = tagging.conversation_tag_get_or_create(actor=analyst, name="churn risk")
    assert a == b and a.name == "Churn risk" and a.slug == "churn-risk"


@pytest.mark.parametrize("who", ["moderator", "expert"])
def test_only_analysts_and_admins_tag(request, who, many):
    user = request.getfixturevalue(who)
    with pytest.raises(PermissionDenied):
        tagging.conversation_tag_get_or_create(actor=user, name="x")
    tag = ConversationTag.objects.create(name="t", slug="t")
    with pytest.raises(PermissionDenied):
        tagging.conversation_tag_apply_matching(actor=user, tag=tag, filters=ConversationFilters())
    with pytest.raises(PermissionDenied):
        tagging.conversation_tag_apply_ids(actor=user, tag=tag, conversation_ids=[many[0][0].pk])
    assert not ConversationTagging.objects.exists()


def test_feedback_category_filter(db):
    hit = ConversationFactory(feedback={1: [{"kind": "thumbs_down", "categories": ["too vague"]}]})
    ConversationFactory(feedback={1: [{"kind": "thumbs_down", "categories": ["wrong"]}]})
    ConversationFactory()
    page = conversation_list(filters=ConversationFilters(feedback_category="too vague"))
    assert [c.pk for c in page.rows] == [hit.pk]
