"""The agent request throttle counts every request exactly, however many threads ask at once."""

import threading
from collections import Counter

import pytest
from django.core.cache import cache
from django.db import connection

from governance.auth import AgentRateThrottle
from tests.builders import client_for
from tests.integration.workers import redis_url

pytestmark = pytest.mark.integration

THREADS, REQUESTS_EACH, LIMIT = 8, 10, 40


@pytest.fixture
def redis_throttle(settings, monkeypatch):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url()}}
    monkeypatch.setattr(AgentRateThrottle, "THROTTLE_RATES", {"agent": f"{LIMIT}/hour"})
    cache.clear()
    yield
    cache.clear()


def test_eight_threads_on_one_agent_get_exactly_the_limit_through(agent_token, redis_throttle):
    token = agent_token[1]
    statuses = Counter()
    lock, barrier = threading.Lock(), threading.Barrier(THREADS)

    def hammer():
        client = client_for(token)
        barrier.wait()
        try:
            for _ in range(REQUESTS_EACH):
                code = client.get("/api/v1/proposals/").status_code
                with lock:
                    statuses[code] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == {200: LIMIT, 429: THREADS * REQUESTS_EACH - LIMIT}
