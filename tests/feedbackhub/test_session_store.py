"""Sessions: stored in the database, read through Redis, and still working when Redis is unreachable."""

from __future__ import annotations

import socket

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from feedbackhub import session_store

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_queries(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "django_session" in q["sql"]]


def _redis_down(settings) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0"}}


def test_a_logged_in_request_reads_its_session_from_the_cache(client, moderator):
    client.force_login(moderator)
    key = client.session.session_key
    assert Session.objects.filter(session_key=key).exists()  # the database keeps every session
    assert cache.get(session_store.SessionStore.cache_key_prefix + key)["_auth_user_id"] == str(moderator.pk)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("conversations:list")).status_code == 200
    assert _session_queries(captured) == []


def test_the_cached_copy_lives_minutes_not_the_sessions_two_weeks(client, moderator, settings):
    settings.SESSION_CACHE_SECONDS = 120
    client.force_login(moderator)
    key = session_store.SessionStore.cache_key_prefix + client.session.session_key
    ttl = cache._cache.get_client(key).ttl(cache.make_and_validate_key(key))
    assert 0 < ttl <= 120


def test_a_session_missing_from_the_cache_is_read_from_the_database_and_cached_again(client, moderator):
    client.force_login(moderator)
    key = client.session.session_key
    cache.delete(session_store.SessionStore.cache_key_prefix + key)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("conversations:list")).status_code == 200
    assert len(_session_queries(captured)) == 1
    assert cache.get(session_store.SessionStore.cache_key_prefix + key) is not None


def test_logout_removes_the_session_from_both(client, moderator):
    client.force_login(moderator)
    key = client.session.session_key
    client.post(reverse("logout"))
    assert not Session.objects.filter(session_key=key).exists()
    assert cache.get(session_store.SessionStore.cache_key_prefix + key) is None
    assert client.get(reverse("conversations:list")).status_code == 302  # to the login page


def test_with_redis_unreachable_login_pages_and_logout_still_work(client, moderator, settings):
    moderator.set_password("a long enough password")
    moderator.save()
    _redis_down(settings)
    response = client.post(reverse("login"), {"username": moderator.username, "password": "a long enough password"})
    assert response.status_code == 302
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert Session.objects.filter(session_key=key).exists()
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("conversations:list")).status_code == 200
    assert len(_session_queries(captured)) == 1  # from the database, as without a cache
    client.post(reverse("logout"))
    assert not Session.objects.filter(session_key=key).exists()
