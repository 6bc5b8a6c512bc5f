import secrets

from django.db import transaction

from governance.auth import hash_token
from governance.models import Agent, Strategy
from ledger.services import audit_record

SYSTEM = "system"


@transaction.atomic
def agent_create(*, name: str, strategy_slugs: list[str], actor: str = SYSTEM, staff: bool = False) -> tuple[Agent, str]:
    """Create an agent bound to strategies (made if missing). Returns the agent and its token, shown once.
    A staff token also reads every strategy's events and portfolio (a drop copy for risk)."""
    token = "cx_" + secrets.token_urlsafe(32)
    agent = Agent.objects.create(name=name, token_hash=hash_token(token), token_prefix=token[:10], is_staff=staff)
    strategies = [Strategy.objects.get_or_create(slug=slug, defaults={"name": slug})[0] for slug in strategy_slugs]
    agent.strategies.set(strategies)
    audit_record(kind="agent.created", actor=actor, payload={"agent": name, "strategies": sorted(strategy_slugs), "staff": staff})
    return agent, token
