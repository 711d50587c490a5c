"""Writes of the product team's conversation tags (one by one, and in bulk over every match of a list filter) and
saved views of the conversation list.

Bulk tagging is set-based: ``INSERT ... SELECT <the list's own filter query> ON CONFLICT DO NOTHING`` (and a
``DELETE ... USING`` to remove), so a million matches are one statement and nothing passes through Python.
"""

# The SQL below is assembled from model table names; request values are query parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.http import QueryDict
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from feedbackhub import roles
from sessions.models import Conversation, ConversationTag, ConversationTagging, SavedView
from sessions.selectors import ConversationFilters, conversation_match_sql

#: Query parameters of the session list that a saved view keeps (page positions are left out).
VIEW_PARAMS = (
    "q", "environment", "model_version", "user_role", "source", "app_version", "started_from", "started_to",
    "feedback", "negative", "category", "tag",
)  # fmt: skip
TAG_COLOURS = ("#4f6bed", "#0f9d8a", "#c2410c", "#9333ea", "#be185d", "#15803d", "#b45309", "#0369a1")


def can_tag(user: AbstractBaseUser) -> bool:
    """Tagging conversations (and managing conversation tags) is for product analysts and admins."""
    return roles.has_role(user, roles.PRODUCT_ANALYST, roles.ADMIN)


def _require_tagger(actor: AbstractBaseUser) -> None:
    if not can_tag(actor):
        raise PermissionDenied("Only product analysts and admins tag conversations.")


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


# --- Conversation tags -----------------------------------------------------------------------------------------------


@transaction.atomic
def conversation_tag_get_or_create(*, actor: AbstractBaseUser, name: str) -> ConversationTag:
    """The tag called ``name`` (case-insensitive), created when missing. Raises ValidationError on a bad name."""
    _require_tagger(actor)
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Give the tag a name."})
    if len(name) > 80:
        raise ValidationError({"name": "A tag name has at most 80 characters."})
    existing = ConversationTag.objects.filter(name__iexact=name).first()
    if existing is not None:
        return existing
    base = slugify(name)[:70] or "tag"
    slug = base
    while ConversationTag.objects.filter(slug=slug).exists():
        slug = f"{base}-{get_random_string(4, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
    colour = TAG_COLOURS[ConversationTag.objects.count() % len(TAG_COLOURS)]
    try:
        # Insert-or-read: two first uses of a new name at once both find nothing; the unique name makes the second
        # insert wait for the first and fail in its own savepoint, and it returns the tag the first one made.
        with transaction.atomic():
            return ConversationTag.objects.create(name=name, slug=slug, colour=colour, created_by=actor)
    except IntegrityError:
        existing = ConversationTag.objects.filter(name__iexact=name).first()
        if existing is None:  # the slug was taken meanwhile, not the name: a random one
            slug = f"{base}-{get_random_string(8, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
            return ConversationTag.objects.create(name=name, slug=slug, colour=colour, created_by=actor)
        return existing


@dataclass(frozen=True)
class BulkResult:
    tag: ConversationTag
    #: Rows inserted (sessions that did not carry the tag yet) or deleted.
    changed: int
    removed: bool = False


@transaction.atomic
def conversation_tag_apply_matching(
    *, actor: AbstractBaseUser, tag: ConversationTag, filters: ConversationFilters
) -> BulkResult:
    """Tag every session matching ``filters`` (every page, not only the one shown); sessions that already carry
    the tag are left alone. One statement whatever the number of matches."""
    _require_tagger(actor)
    match_sql, params = conversation_match_sql(filters)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_q(ConversationTagging._meta.db_table)} (conversation_id, tag_id, tagged_by_id, tagged_at) "
            f"SELECT m.id, %s, %s, %s FROM ({match_sql}) m "
            "ON CONFLICT (conversation_id, tag_id) DO NOTHING",
            [tag.pk, actor.pk, timezone.now(), *params],
        )
        return BulkResult(tag=tag, changed=cursor.rowcount)


@transaction.atomic
def conversation_tag_remove_matching(
    *, actor: AbstractBaseUser, tag: ConversationTag, filters: ConversationFilters
) -> BulkResult:
    """Remove ``tag`` from every session matching ``filters``."""
    _require_tagger(actor)
    match_sql, params = conversation_match_sql(filters)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {_q(ConversationTagging._meta.db_table)} st USING ({match_sql}) m "
            "WHERE st.conversation_id = m.id AND st.tag_id = %s",
            [*params, tag.pk],
        )
        return BulkResult(tag=tag, changed=cursor.rowcount, removed=True)


@transaction.atomic
def conversation_tag_apply_ids(
    *, actor: AbstractBaseUser, tag: ConversationTag, conversation_ids: Iterable[int], remove: bool = False
) -> BulkResult:
    """Tag (or untag) the selected sessions; ids of sessions that do not exist are ignored."""
    _require_tagger(actor)
    ids = sorted({int(pk) for pk in conversation_ids})
    table = _q(ConversationTagging._meta.db_table)
    conv = _q(Conversation._meta.db_table)
    with connection.cursor() as cursor:
        if remove:
            cursor.execute(
                f"DELETE FROM {table} WHERE tag_id = %s AND conversation_id = ANY(%s)", [tag.pk, ids]
            )
        else:
            cursor.execute(
                f"INSERT INTO {table} (conversation_id, tag_id, tagged_by_id, tagged_at) "
                f"SELECT c.id, %s, %s, %s FROM {conv} c WHERE c.id = ANY(%s) "
                "ON CONFLICT (conversation_id, tag_id) DO NOTHING",
                [tag.pk, actor.pk, timezone.now(), ids],
            )
        return BulkResult(tag=tag, changed=cursor.rowcount, removed=remove)


# --- Saved views -----------------------------------------------------------------------------------------------------


def view_query_string(params: QueryDict | dict) -> str:
    """The list filter part of a query string, in a stable order, empty values and page positions dropped."""
    pairs = []
    for name in VIEW_PARAMS:
        values = params.getlist(name) if isinstance(params, QueryDict) else [params.get(name, "")]
        pairs.extend((name, value) for value in values if value not in (None, ""))
    return urlencode(pairs)


@transaction.atomic
def saved_view_create(*, actor: AbstractBaseUser, name: str, params: QueryDict | dict, shared: bool) -> SavedView:
    """Save the list filter in ``params`` as ``name``; the same owner and name replaces the earlier filter."""
    if not actor.is_authenticated:
        raise PermissionDenied("Log in to save views.")
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Give the view a name."})
    if len(name) > 120:
        raise ValidationError({"name": "A view name has at most 120 characters."})
    query = view_query_string(params)
    existing = SavedView.objects.select_for_update().filter(owner=actor, name=name).first()
    if existing is not None:
        existing.query_string = query
        existing.shared = shared
        existing.save(update_fields=["query_string", "shared", "updated_at"])
        return existing
    slug = f"{slugify(name)[:100] or 'view'}-{get_random_string(6, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
    try:
        # Insert-or-lock: the same owner saving the same name twice at once (a double submit): the second insert
        # fails on the unique (owner, name) in its own savepoint and replaces the first one's filter instead.
        with transaction.atomic():
            return SavedView.objects.create(name=name, slug=slug, owner=actor, query_string=query, shared=shared)
    except IntegrityError:
        existing = SavedView.objects.select_for_update().filter(owner=actor, name=name).first()
        if existing is None:
            raise
        existing.query_string = query
        existing.shared = shared
        existing.save(update_fields=["query_string", "shared", "updated_at"])
        return existing


@transaction.atomic
def saved_view_delete(*, actor: AbstractBaseUser, view: SavedView) -> None:
    """Delete a saved view: its owner or an admin."""
    if view.owner_id != actor.pk and not roles.has_role(actor, roles.ADMIN):
        raise PermissionDenied("Only the owner of a saved view deletes it.")
    view.delete()
