from datetime import timedelta
from decimal import Decimal

from django.db.models import Q

from governance import engine
from governance.models import CircuitBreaker, Decision, Proposal, Ruleset, Strategy
from ledger.models import Position

# Proposals whose approved quantity may still reach the market: it counts against caps.
RESERVING_STATUSES = ("pending", "approved", "routed", "partially_filled")


def ruleset_current() -> Ruleset | None:
    return Ruleset.objects.filter(status=Ruleset.Status.PUBLISHED).order_by("-version").first()


def breakers_tripped() -> list[str]:
    return list(CircuitBreaker.objects.filter(tripped=True).order_by("name").values_list("name", flat=True))


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


def _reserved(*, exclude_id):
    """Approved-but-unfilled quantity of open proposals, as (strategy_id, instrument_id, signed qty, notional, intent)."""
    decisions = (
        Decision.objects.filter(proposal__status__in=RESERVING_STATUSES)
        .exclude(outcome=Decision.Outcome.BLOCK)
        .exclude(proposal_id=exclude_id)
        .select_related("proposal")
        .prefetch_related("proposal__orders")  # one query for all orders: this runs on every evaluation and vote
    )
    rows = []
    for decision in decisions:
        proposal = decision.proposal
        filled = sum((o.filled_quantity for o in proposal.orders.all()), Decimal(0))
        remaining = decision.approved_quantity - filled
        if remaining <= 0:
            continue
        sign = 1 if proposal.side == "buy" else -1
        price = engine.notional_price(
            {"order_type": proposal.order_type, "limit_price": proposal.limit_price, "reference_price": proposal.reference_price}
        )
        rows.append((proposal.strategy_id, proposal.instrument_id, sign * remaining, remaining * price, proposal.intent))
    return rows


def decision_context(*, proposal: Proposal, trading_enabled: bool, trading_reason: str) -> dict:
    """Everything outside the proposal that the rules look at, as plain data."""
    strategy_id, instrument_id = proposal.strategy_id, proposal.instrument_id
    position_quantity = Decimal(0)
    closable = Decimal(0)
    asset_exposure = strategy_exposure = gross_exposure = Decimal(0)
    open_keys = set()
    # Reservations are read before positions: a fill committing in between is then
    # counted twice (conservative), never missed.
    reserved = _reserved(exclude_id=proposal.id)

    for position in Position.objects.all():
        key = (position.strategy_id, position.instrument_id)
        if position.quantity != 0:
            open_keys.add(key)
        gross_exposure += position.entry_notional
        if position.instrument_id == instrument_id:
            asset_exposure += position.entry_notional
        if position.strategy_id == strategy_id:
            strategy_exposure += position.entry_notional
        if key == (strategy_id, instrument_id):
            position_quantity += position.quantity
            closable += abs(position.quantity)

    for r_strategy, r_instrument, signed_qty, notional, intent in reserved:
        key = (r_strategy, r_instrument)
        if intent == "close":
            # A pending close may not be counted twice against the same lots.
            if key == (strategy_id, instrument_id):
                closable -= abs(signed_qty)
            continue
        open_keys.add(key)
        gross_exposure += notional
        if r_instrument == instrument_id:
            asset_exposure += notional
        if r_strategy == strategy_id:
            strategy_exposure += notional
        if key == (strategy_id, instrument_id):
            position_quantity += signed_qty

    instrument = proposal.instrument
    window_start = proposal.received_at - timedelta(seconds=60)
    recent = (
        Proposal.objects.filter(strategy_id=strategy_id, received_at__gte=window_start)
        .filter(Q(received_at__lt=proposal.received_at) | Q(received_at=proposal.received_at, id__lt=proposal.id))
        .count()
    )
    return {
        "trading_enabled": trading_enabled,
        "trading_reason": trading_reason,
        "tripped_breakers": breakers_tripped(),
        "instrument": {
            "enabled": instrument.enabled,
            "min_quantity": str(instrument.min_quantity),
            "quantity_step": str(instrument.quantity_step),
        },
        "position_quantity": str(position_quantity),
        "closable_quantity": str(max(closable, Decimal(0))),
        "asset_exposure": str(asset_exposure),
        "strategy_exposure": str(strategy_exposure),
        "gross_exposure": str(gross_exposure),
        "open_positions": len(open_keys),
        "has_open_position": (strategy_id, instrument_id) in open_keys,
        "proposals_last_minute": recent,
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


def proposal_prefetch(qs):
    return qs.select_related("strategy", "instrument", "decision").prefetch_related("votes", "orders__fills")


def agent_bound_to(*, agent, strategy_slug: str) -> Strategy | None:
    return agent.strategies.filter(slug=strategy_slug).first()
