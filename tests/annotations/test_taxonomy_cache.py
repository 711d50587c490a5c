"""The taxonomy (every review request reads it) comes from a cached copy that any tag write drops."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import transaction

from annotations import selectors
from annotations.models import Tag

# Committed transactions: the cache is only filled and read outside one.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_cached_taxonomy():
    # An earlier committed test may have flushed the seeded taxonomy.
    Tag.objects.get_or_create(slug="too-vague", defaults={"name": "Too vague", "colour": "#888888"})
    cache.delete(selectors.TAXONOMY_CACHE_KEY)
    yield
    cache.delete(selectors.TAXONOMY_CACHE_KEY)


def _names(tags: list[Tag]) -> list[str]:
    return [t.name for t in tags]


def test_tags_are_read_once_then_from_the_cache(django_assert_num_queries):
    with django_assert_num_queries(1):
        first = selectors.all_tags()
    assert first and _names(first) == _names(list(Tag.objects.all()))
    with django_assert_num_queries(0):
        assert _names(selectors.all_tags()) == _names(first)


def test_a_saved_or_deleted_tag_drops_the_copy():
    selectors.all_tags()
    tag = Tag.objects.create(name="Outdated pricing", slug="outdated-pricing", colour="#aa3300")
    assert "Outdated pricing" in _names(selectors.all_tags())
    tag.name = "Outdated price list"
    tag.save()
    assert "Outdated price list" in _names(selectors.all_tags())
    tag.delete()
    assert "Outdated price list" not in _names(selectors.all_tags())


def test_inside_a_transaction_the_database_is_read_and_nothing_is_cached(django_assert_num_queries):
    with transaction.atomic():
        Tag.objects.create(name="Not yet committed", slug="not-yet-committed", colour="#112233")
        with django_assert_num_queries(1):
            assert "Not yet committed" in _names(selectors.all_tags())
        transaction.set_rollback(True)
    assert cache.get(selectors.TAXONOMY_CACHE_KEY) is None
    assert "Not yet committed" not in _names(selectors.all_tags())


def test_a_reader_that_cached_the_old_tags_during_a_write_is_dropped_at_commit():
    with transaction.atomic():
        tag = Tag.objects.create(name="Late", slug="late", colour="#445566")
        # Another process reading now sees the committed tags and caches them (simulated: the old list, put back).
        cache.set(selectors.TAXONOMY_CACHE_KEY, list(Tag.objects.exclude(pk=tag.pk)), 60)
    assert "Late" in _names(selectors.all_tags())
