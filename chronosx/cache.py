"""Django's Redis cache with one connection pool per process instead of one per thread.

Django keeps a cache object per thread, and its Redis client makes its own connection pool, so
under ASGI (a new thread per request) every request opened a new connection to Redis for the
request throttle. redis-py's pools are thread-safe and reset themselves in a forked child, so
one pool per server URL serves the whole process.
"""

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools = {}
_pools_lock = threading.Lock()


class SharedPoolRedisCacheClient(RedisCacheClient):
    def _get_connection_pool(self, write):
        url = self._servers[self._get_connection_pool_index(write)]
        with _pools_lock:
            if url not in _pools:
                _pools[url] = self._pool_class.from_url(url, **self._pool_options)
            return _pools[url]


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
