"""Django's Redis cache backend, with one Redis client per connection pool instead of one per cache call.

``django.core.cache.backends.redis.RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every call, which
costs more CPU than the call itself on a local Redis (about 0.2 ms against 0.1 ms for a GET). A ``redis.Redis`` holds
no connection of its own (it takes one from the pool per command, and the pool is thread- and fork-safe), so one per
pool serves every call. Django documents ``get_client`` as the hook for custom clients.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
