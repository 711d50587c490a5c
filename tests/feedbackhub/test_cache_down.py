"""With Redis unreachable every page is served, uncached: the cache backend fails soft (feedbackhub/cache.py)."""

from __future__ import annotations

import socket

import pytest
from django.core.cache import cache
from django.urls import reverse

from annotations import services as review
from feedbackhub.cache import FailSoftRedisCache
from tests.annotations.conftest import REPLY, make_conversation, span

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_down(settings) -> None:
    # The project's backend and options, pointed at a port nobody listens on (settings resets the cache handlers).
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0"}}


def test_the_project_cache_is_the_fail_soft_one(settings):
    assert settings.CACHES["default"]["BACKEND"] == "feedbackhub.cache.FailSoftRedisCache"


def test_cache_calls_answer_a_miss_while_redis_is_down(redis_down):
    cache.set("k", 1)
    assert cache.get("k") is None and cache.get("k", "default") == "default"
    assert cache.get_many(["a", "b"]) == {} and cache.add("k", 1) is False and cache.has_key("k") is False
    assert cache.get_or_set("k", 2) == 2
    cache.delete("k")
    cache.set_many({"a": 1})
    with pytest.raises(ValueError):
        cache.incr("k")


def test_pages_are_served_uncached_while_redis_is_down(client, moderator, redis_down):
    conversation = make_conversation(replies=[REPLY])
    turn = conversation.turns.get(role="assistant")
    review.annotation_create(actor=moderator, turn=turn, body="Berlin is wrong.", **span(turn, "Berlin"))
    client.force_login(moderator)
    for url in (
        reverse("insights:dashboard"),
        reverse("insights:dashboard"),  # a second time: the first could not store what it rendered
        reverse("annotations:review", args=[conversation.pk]),
        reverse("conversations:list"),
        reverse("conversations:detail", args=[conversation.pk]),
        reverse("conversations:import_list"),
        reverse("triage:queue"),
        reverse("home"),
    ):
        response = client.get(url, follow=True)
        assert response.status_code == 200, url


def test_redis_back_is_used_again(settings):
    backend = FailSoftRedisCache(settings.REDIS_URL, {"OPTIONS": {"socket_connect_timeout": 1}})
    backend.set("fail-soft-check", 7)
    assert backend.get("fail-soft-check") == 7
