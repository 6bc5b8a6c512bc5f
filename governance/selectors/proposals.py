"""Proposals as agents and the engine see them."""

from django.conf import settings

from governance.models import Proposal, Strategy


def proposal_engine_input(*, proposal: Proposal) -> dict:
    """The proposal as the engine sees it: exact strings, ISO times."""
    return {
        "id": str(proposal.id),
        "strategy": proposal.strategy.slug,
        "symbol": proposal.instrument.symbol,
        "side": proposal.side,
        "quantity": str(proposal.quantity),
        "order_type": proposal.order_type,
        "limit_price": None if proposal.limit_price is None else str(proposal.limit_price),
        "reference_price": str(proposal.reference_price),
        "expected_slippage_bps": str(proposal.expected_slippage_bps),
        "confidence": str(proposal.confidence),
        "signal_time": proposal.signal_time.isoformat(),
        "received_at": proposal.received_at.isoformat(),
        "intent": proposal.intent,
    }


def proposal_list(*, agent, strategy: str | None = None, status: str | None = None, limit: int = 100):
    qs = Proposal.objects.filter(strategy__in=agent.strategies.all())
    if strategy:
        qs = qs.filter(strategy__slug=strategy)
    if status:
        qs = qs.filter(status=status)
    return proposal_prefetch(qs.order_by("-received_at")[:limit])


def proposal_get(*, agent, proposal_id) -> Proposal | None:
    """A proposal the agent may see: one of its strategies' (BOLA-safe)."""
    qs = Proposal.objects.filter(id=proposal_id, strategy__in=agent.strategies.all())
    return proposal_prefetch(qs).first()


def proposal_as_submitted(*, agent, proposal: Proposal, created: bool) -> Proposal:
    """The proposal a POST answers with. One it has just stored is answered as stored, without
    reading it back: nothing could refer to it before its commit, so it has no decision, votes,
    orders or force requests yet (a GET shows what workers did since). In the embedded default
    the whole pipeline has already run inside the request, and a retried key may name an old
    proposal: both are read back."""
    if not created or settings.EMBEDDED_TASKS:
        return proposal_get(agent=agent, proposal_id=proposal.id)
    proposal._state.fields_cache["decision"] = None
    proposal._prefetched_objects_cache = {
        name: getattr(proposal, name).none() for name in ("votes", "orders", "force_requests")
    }
    return proposal


def proposal_prefetch(qs):
    return qs.select_related("strategy", "instrument", "decision").prefetch_related("votes", "orders__fills", "force_requests")


def agent_bound_to(*, agent, strategy_slug: str) -> Strategy | None:
    return agent.strategies.filter(slug=strategy_slug).first()
