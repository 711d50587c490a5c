"""The cache backend: Django's Redis cache, with one Redis client per connection pool."""

from __future__ import annotations

import threading

from django.core.cache import cache

from feedbackhub import redis_cache


def test_every_call_shares_one_client_and_its_pool():
    backend = cache._cache  # noqa: SLF001 (the client object Django builds once per cache instance)
    assert isinstance(backend, redis_cache.RedisCacheClient)
    first = backend.get_client("a")
    assert backend.get_client("b", write=True) is first
    assert first.connection_pool is backend._get_connection_pool(write=False)  # noqa: SLF001


def test_reads_and_writes_behave_as_djangos_backend():
    cache.set("redis-cache:test", {"n": 1}, 30)
    assert cache.get("redis-cache:test") == {"n": 1}
    assert cache.add("redis-cache:test", "other", 30) is False
    assert cache.add("redis-cache:new", 7, 30) is True
    assert cache.get_many(["redis-cache:test", "redis-cache:new", "redis-cache:missing"]) == {
        "redis-cache:test": {"n": 1}, "redis-cache:new": 7}
    assert cache.incr("redis-cache:new") == 8
    cache.delete_many(["redis-cache:test", "redis-cache:new"])
    assert cache.get("redis-cache:test") is None


def test_the_shared_client_serves_threads_at_once():
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                key = f"redis-cache:thread:{n}:{i}"
                cache.set(key, (n, i), 30)
                assert cache.get(key) == (n, i)
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    # Django gives each thread its own cache object: share one across threads, as a pool of workers sharing the
    # process-wide client would.
    shared = cache._cache  # noqa: SLF001
    threads = [threading.Thread(target=lambda n=n: _with_client(shared, work, n)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _with_client(shared, work, n: int) -> None:  # noqa: ANN001
    from django.core.cache import caches

    caches["default"].__dict__["_cache"] = shared  # this thread's cache object uses the shared client
    work(n)
