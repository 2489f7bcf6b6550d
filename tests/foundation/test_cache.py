"""The Redis cache reuses one client per connection pool, and still works as a cache."""

import os
import uuid

import pytest

from smartpay.cache import RedisCache, count


def backend(url: str) -> RedisCache:
    return RedisCache(url, {"OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}})


def test_one_client_serves_every_call():
    cache = backend("redis://127.0.0.1:6379/15")  # building clients opens no connection
    first = cache._cache.get_client(write=True)
    assert cache._cache.get_client(write=True) is first
    assert cache._cache.get_client(write=False) is first  # one server: reads and writes share its pool


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL; set by .ci/run)")
def test_it_still_stores_counts_and_expires():
    cache = backend(os.environ["REDIS_URL"])
    key = f"cache-test-{uuid.uuid4().hex}"
    assert cache.add(key, 0, timeout=30) is True
    assert cache.add(key, 5, timeout=30) is False
    assert [cache.incr(key) for _ in range(3)] == [1, 2, 3]
    cache.set(f"{key}:v", {"a": [1, 2]}, timeout=30)
    assert cache.get(f"{key}:v") == {"a": [1, 2]}
    cache.delete_many([key, f"{key}:v"])
    assert cache.get(key) is None


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL; set by .ci/run)")
def test_count_is_one_round_trip_that_sets_the_expiry_once():
    cache = backend(os.environ["REDIS_URL"])
    key = f"count-test-{uuid.uuid4().hex}"
    assert [count(key, 50, cache=cache) for _ in range(3)] == [1, 2, 3]
    client = cache._cache.get_client(write=True)
    raw = cache.make_and_validate_key(key)
    assert 45 < client.ttl(raw) <= 50
    client.expire(raw, 500)
    count(key, 50, cache=cache)
    assert client.ttl(raw) > 450  # a later count keeps the expiry the first one set
    assert cache.get(key) == 4  # readable through the cache as usual
    cache.delete(key)


def test_count_on_the_local_memory_cache():
    from django.core.cache.backends.locmem import LocMemCache

    local = LocMemCache("count-test", {})
    assert [count("k", 50, cache=local) for _ in range(3)] == [1, 2, 3]
