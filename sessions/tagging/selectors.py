"""Reads of the product team's conversation tags and saved views, and counting the matches of a list filter."""

# SQL assembled from the list filter's own query; request values are its parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Q

from sessions.models import ConversationTag, ConversationTagging, SavedView
from sessions.selectors import ConversationFilters, conversation_match_sql


def conversation_tags() -> list[ConversationTag]:
    return list(ConversationTag.objects.order_by("name"))


def conversation_tags_for(conversation_ids: list[int]) -> dict[int, list[ConversationTag]]:
    """The session tags of the given sessions, by session id, each list sorted by tag name; one query."""
    found: dict[int, list[ConversationTag]] = defaultdict(list)
    if not conversation_ids:
        return {}
    taggings = (
        ConversationTagging.objects.filter(conversation_id__in=conversation_ids)
        .select_related("tag")
        .order_by("tag__name")
    )
    for tagging in taggings:
        found[tagging.conversation_id].append(tagging.tag)
    return dict(found)


def count_matching(filters: ConversationFilters) -> int:
    """Exact number of sessions matching a list filter: run on demand (the bulk bar), never on a list page."""
    sql, params = conversation_match_sql(filters)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql}) m", params)
        return int(cursor.fetchone()[0])


def saved_views_for(user: AbstractBaseUser) -> list[SavedView]:
    """The user's own saved views and everyone's shared ones."""
    return list(
        SavedView.objects.filter(Q(owner=user) | Q(shared=True)).select_related("owner").order_by("name", "id")
    )
