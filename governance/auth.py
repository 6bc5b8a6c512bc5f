import hashlib
import logging
import time

from django.core.cache import cache
from rest_framework import authentication, exceptions, throttling

from governance.models import Agent

log = logging.getLogger(__name__)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AgentTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <token>`, checked against the stored SHA-256 of agent tokens."""

    def authenticate_credentials(self, key):
        agent = Agent.objects.filter(token_hash=hash_token(key), is_active=True).first()
        if agent is None:
            raise exceptions.AuthenticationFailed("invalid token")
        return (agent, key)


class AgentRateThrottle(throttling.SimpleRateThrottle):
    """Per-agent request rate; staff sessions by user; anonymous (health, schema) unthrottled.

    A counter per principal and window, incremented atomically in the cache (Redis INCR in
    production, a locked dict in the embedded default), so concurrent requests are all
    counted: exactly `num_requests` pass in a window, however many threads ask at once.
    (DRF's own throttle reads a history list and writes it back, and loses updates.)
    While the cache is unreachable the throttle lets requests through, and says so in the
    log: an agent is never refused because Redis is away.
    """

    scope = "agent"
    _failing_open = False

    def get_cache_key(self, request, view):
        principal = request.user
        if isinstance(principal, Agent):
            ident = f"agent-{principal.pk}"
        elif principal is not None and getattr(principal, "is_authenticated", False):
            ident = f"user-{principal.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        try:
            count = self._count(f"{key}:{window}")
        except Exception as exc:
            if not AgentRateThrottle._failing_open:
                log.warning("request throttle unavailable (%s): letting requests through until the cache is back", exc)
                AgentRateThrottle._failing_open = True
            return True
        if AgentRateThrottle._failing_open:
            log.warning("request throttle available again")
            AgentRateThrottle._failing_open = False
        self.wait_seconds = (window + 1) * self.duration - now
        return count <= self.num_requests

    def _count(self, key: str) -> int:
        cache.add(key, 0, timeout=self.duration * 2)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 0, timeout=self.duration * 2)
            return cache.incr(key)

    def wait(self):
        return self.wait_seconds
