"""Database sessions read through the cache, and still served when the cache is down.

Django's ``cached_db`` engine saves a database query per request (the session row comes from Redis), but it calls the
cache unguarded in ``load`` (after a database read), ``exists`` and ``delete``, so with Redis down every logged-in
request would fail, which the app must not do. This subclass guards every cache call: with the cache down, sessions
are read from and written to the database alone.

The database stays the source of truth; the cache holds a copy for ``SESSION_CACHE_SECONDS`` (5 minutes), not the
session's whole age, so a session deleted while Redis was unreachable (a logout) cannot outlive its cached copy by
more than that.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import cached_db

logger = logging.getLogger(__name__)

#: How long the cache keeps a copy of a session (the database row lives as long as the session).
DEFAULT_CACHE_SECONDS = 300


def _cache_seconds(age: int) -> int:
    return max(1, min(age, int(getattr(settings, "SESSION_CACHE_SECONDS", DEFAULT_CACHE_SECONDS))))


class SessionStore(cached_db.SessionStore):
    def _cache_call(self, what: str, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except Exception:
            logger.warning("session cache unavailable (%s); using the database alone", what, exc_info=True)
            return None

    def load(self) -> dict[str, Any]:
        data = self._cache_call("get", self._cache.get, self.cache_key)
        if data is None:
            s = self._get_session_from_db()
            if not s:
                return {}
            data = self.decode(s.session_data)
            self._cache_call("set", self._cache.set, self.cache_key, data,
                             _cache_seconds(self.get_expiry_age(expiry=s.expire_date)))
        return data

    def exists(self, session_key: str | None) -> bool:
        if session_key and self._cache_call("has", self._cache.has_key, self.cache_key_prefix + session_key):
            return True
        return cached_db.DBStore.exists(self, session_key)

    def save(self, must_create: bool = False) -> None:
        cached_db.DBStore.save(self, must_create)
        self._cache_call("set", self._cache.set, self.cache_key, self._session, _cache_seconds(self.get_expiry_age()))

    def delete(self, session_key: str | None = None) -> None:
        cached_db.DBStore.delete(self, session_key)
        session_key = session_key or self.session_key
        if session_key:
            self._cache_call("delete", self._cache.delete, self.cache_key_prefix + session_key)
