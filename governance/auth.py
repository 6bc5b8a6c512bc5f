import hashlib

from rest_framework import authentication, exceptions, throttling

from governance.models import Agent


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
    """Per-agent request rate; staff sessions by user; anonymous (health, schema) unthrottled."""

    scope = "agent"

    def get_cache_key(self, request, view):
        principal = request.user
        if isinstance(principal, Agent):
            ident = f"agent-{principal.pk}"
        elif principal is not None and getattr(principal, "is_authenticated", False):
            ident = f"user-{principal.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}
