"""The cache backend: Django's Redis cache, failing soft while Redis is unreachable.

Every use of the cache in the project is an optimisation (fragments, filter choices, dashboard bodies, the taxonomy,
a copy of each session), so a page must still be served, uncached, when Redis is down. This backend turns a Redis
connection error or timeout into a miss (reads) or a no-op (writes), logs it, and then leaves Redis alone for
``RETRY_SECONDS`` in this process, so a page that reads the cache many times does not wait for a dead server each
time. Errors that are not about reaching Redis (a value that cannot be pickled) still raise.

Connect and read timeouts are set short in ``CACHES["default"]["OPTIONS"]`` (settings), so a server that hangs
costs at most that per ``RETRY_SECONDS``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

#: After a failure, how long this process serves without the cache before it tries Redis again.
RETRY_SECONDS = 5.0
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)


class FailSoftRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._down_until = 0.0

    def _soft(self, what: str, call: Callable[[], Any], fallback: Any) -> Any:
        if self._down_until and time.monotonic() < self._down_until:
            return fallback
        try:
            result = call()
        except UNREACHABLE:
            self._down_until = time.monotonic() + RETRY_SECONDS
            logger.warning("cache unreachable (%s): serving uncached for %s s", what, RETRY_SECONDS, exc_info=True)
            return fallback
        self._down_until = 0.0
        return result

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._soft("get", lambda: super(FailSoftRedisCache, self).get(key, default, version), default)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        keys = list(keys)
        return self._soft("get_many", lambda: super(FailSoftRedisCache, self).get_many(keys, version), {})

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._soft("has_key", lambda: super(FailSoftRedisCache, self).has_key(key, version), False)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._soft("add", lambda: super(FailSoftRedisCache, self).add(key, value, timeout, version), False)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._soft("set", lambda: super(FailSoftRedisCache, self).set(key, value, timeout, version), None)

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list:
        return self._soft(
            "set_many", lambda: super(FailSoftRedisCache, self).set_many(data, timeout, version), list(data)
        )

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._soft("touch", lambda: super(FailSoftRedisCache, self).touch(key, timeout, version), False)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._soft("delete", lambda: super(FailSoftRedisCache, self).delete(key, version), False)

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        keys = list(keys)
        self._soft("delete_many", lambda: super(FailSoftRedisCache, self).delete_many(keys, version), None)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        missing = object()
        result = self._soft("incr", lambda: super(FailSoftRedisCache, self).incr(key, delta, version), missing)
        if result is missing:
            raise ValueError(f"Key '{key}' not found (the cache is unreachable)")
        return result

    def clear(self) -> bool:
        return self._soft("clear", lambda: super(FailSoftRedisCache, self).clear(), False)
