"""The Redis cache backend, with one redis client per connection pool instead of one per call.

Django's `RedisCache` builds a new `redis.Redis` object for every cache operation. Each one sets up
its table of response callbacks (a couple of hundred entries) in Python: about 0.15 ms of CPU, and
a payment makes several cache calls (breaker, rate limit). A `redis.Redis` is thread-safe and draws
its sockets from the pool, so one per pool serves every call; the pool itself still notices a fork
(gunicorn workers) and opens fresh connections there.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class ReusedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
