"""The decision context: everything outside the proposal that the rules look at, as plain data.

It is stored with every decision (`inputs.context`), so a replay never reads the database."""

from datetime import timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db.models import Q

from governance import engine
from governance.models import Decision, ForceRequest, Proposal, TradingState
from governance.selectors.controls import breakers_blocking, pause_reason
from ledger.models import Position
from ledger.selectors import realized_loss_inputs, realized_pnl_between

# Proposals whose approved quantity may still reach the market: it counts against caps.
RESERVING_STATUSES = (
    Proposal.Status.PENDING,
    Proposal.Status.APPROVED,
    Proposal.Status.ROUTED,
    Proposal.Status.PARTIALLY_FILLED,
)


def _reserved(*, exclude_id):
    """Approved-but-unfilled quantity of open proposals, as (strategy_id, instrument_id, signed qty, notional, intent).
    A forced proposal (a block under an approved force record) reserves the quantity it proposed.

    Every evaluation and every vote reads this, so it reads plain values in two queries (the
    decisions, then their orders' fills), not model objects."""
    decisions = (
        Decision.objects.filter(proposal__status__in=RESERVING_STATUSES)
        .exclude(Q(outcome=Decision.Outcome.BLOCK) & ~Q(proposal__force_requests__status=ForceRequest.Status.APPROVED))
        .exclude(proposal_id=exclude_id)
        .order_by()
        .values_list(
            "proposal_id", "outcome", "approved_quantity", "proposal__quantity", "proposal__side", "proposal__order_type",
            "proposal__limit_price", "proposal__reference_price", "proposal__strategy_id", "proposal__instrument_id",
            "proposal__intent",
        )
    )
    decisions = list(decisions)
    filled = {}
    if decisions:
        orders = Proposal.objects.filter(id__in=[row[0] for row in decisions], orders__isnull=False).order_by()
        for proposal_id, filled_quantity in orders.values_list("id", "orders__filled_quantity"):
            filled[proposal_id] = filled.get(proposal_id, Decimal(0)) + filled_quantity
    rows = []
    for row in decisions:
        proposal_id, outcome, approved, quantity, side, order_type, limit_price, reference_price = row[:8]
        strategy_id, instrument_id, intent = row[8:]
        approved = quantity if outcome == Decision.Outcome.BLOCK else approved
        remaining = approved - filled.get(proposal_id, Decimal(0))
        if remaining <= 0:
            continue
        sign = 1 if side == Proposal.Side.BUY else -1
        price = engine.notional_price({"order_type": order_type, "limit_price": limit_price, "reference_price": reference_price})
        rows.append((strategy_id, instrument_id, sign * remaining, remaining * price, intent))
    return rows


def reserved_rows() -> list[tuple]:
    """What working proposals reserve, as the engine counts it: (strategy_id, instrument_id,
    signed remaining quantity, notional, intent) per approved proposal not yet filled."""
    return _reserved(exclude_id=None)


def allocation_trailing_pnl(*, strategy_id, rules: dict, at) -> str:
    """The strategy's realized PnL over the allocation window of `rules` ending at `at`: what
    scales its budget under a pnl_scaled policy."""
    since = at - timedelta(days=int(rules["allocation_window_days"]))
    return realized_pnl_between(strategy_id=strategy_id, since=since, until=at)


def decision_context(*, proposal: Proposal, trading_state: str, trading_reason: str, rules: dict | None = None) -> dict:
    """Everything outside the proposal that the rules look at, as plain data. Under `rules`
    that scale allocations by PnL, it also carries the strategy's trailing realized PnL.

    `proposal` comes with its strategy and instrument as read under the trading-state lock:
    their pauses are part of the context, so a replay sees exactly what was decided on."""
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
        if intent == Proposal.Intent.CLOSE:
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
    allocation = {}
    if rules and rules.get("allocation_policy") == "pnl_scaled":
        allocation["trailing_pnl"] = allocation_trailing_pnl(strategy_id=strategy_id, rules=rules, at=proposal.received_at)
    return {
        **allocation,
        # trading_enabled stays for readers of stored contexts; trading_state decides.
        "trading_enabled": trading_state == TradingState.State.ENABLED,
        "trading_reason": trading_reason,
        "trading_state": trading_state,
        "strategy_paused": pause_reason(proposal.strategy),
        "instrument_paused": pause_reason(proposal.instrument),
        "tripped_breakers": breakers_blocking(),
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
        # The post-ALPHA loss checks' inputs: realized PnL today (the UTC day the proposal
        # was received), since the high-water marks, and the losing streak here.
        **realized_loss_inputs(
            strategy_id=strategy_id,
            instrument_id=instrument_id,
            day=proposal.received_at.astimezone(dt_timezone.utc).date(),
        ),
    }


def decision_context_losses(*, day) -> dict:
    """The portfolio's realized-loss inputs of the UTC day of `day` (a datetime), as a
    decision context carries them (the strategy and asset parts are not asked for)."""
    return realized_loss_inputs(strategy_id=None, instrument_id=None, day=day.astimezone(dt_timezone.utc).date())
