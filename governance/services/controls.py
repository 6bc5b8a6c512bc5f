"""Trading controls: the global trading state, pauses of a strategy or an instrument, circuit
breakers, and the venue health that the router reports (the execution node reads it; nodes never
talk to a venue)."""

from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from chronosx import pipeline
from governance import engine
from governance.models import (
    CircuitBreaker,
    Instrument,
    Proposal,
    Strategy,
    TradingState,
    VenueHealth,
)
from governance.selectors.context import decision_context_losses
from governance.selectors.controls import (
    LOSS_BREAKERS,
    breakers_blocking,
    ruleset_current,
)
from governance.services.alerts import BREAKER_TRIPPED, TRADING_STATE, alert_raise
from ledger.services import audit_record

T = TradingState.State


def trading_state_locked() -> TradingState:
    state, _ = TradingState.objects.select_for_update().get_or_create(pk=1)
    return state


def _reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    if len(reason) > 500:
        raise ValueError("the reason is longer than 500 characters")
    return reason


@transaction.atomic
def trading_set(*, state: str, actor: str, reason: str, kill: bool = False) -> TradingState:
    """Set the global trading state, with its reason; one audit event names who and why.
    `kill`: the halt of the kill switch (audited as such; the exchange cancels what rests)."""
    if state not in T.values:
        raise ValueError(f"unknown trading state {state!r}; one of {', '.join(T.values)}")
    if kill and state != T.HALTED:
        raise ValueError("the kill switch halts trading")
    reason = _reason_required(reason)
    row = trading_state_locked()
    if state == T.ENABLED:
        held = list(CircuitBreaker.objects.filter(name__in=LOSS_BREAKERS, tripped=True).values_list("name", flat=True))
        if held:
            raise ValueError(f"loss-limit breaker tripped: {', '.join(sorted(held))}; its reset (four eyes) comes first")
    previous = row.state
    row.state, row.reason, row.changed_by, row.changed_at = state, reason, actor, timezone.now()
    row.save()
    audit_record(
        kind="trading.killed" if kill else f"trading.{state}",
        actor=actor,
        payload={"state": state, "enabled": row.enabled, "previous": previous, "reason": reason},
    )
    label = state.replace("_", "-")
    alert_raise(
        kind=TRADING_STATE,
        subject=f"Trading {'killed (halted, open orders cancelled)' if kill else label} by {actor}: {reason}",
        actor=actor,
        details={"state": state, "previous": previous, "reason": reason, "user": actor, "kill": kill},
    )
    return row


def trading_enable(*, actor: str, reason: str) -> TradingState:
    return trading_set(state=T.ENABLED, actor=actor, reason=reason)


def trading_reduce_only(*, actor: str, reason: str) -> TradingState:
    return trading_set(state=T.REDUCE_ONLY, actor=actor, reason=reason)


def trading_halt(*, actor: str, reason: str) -> TradingState:
    return trading_set(state=T.HALTED, actor=actor, reason=reason)


@transaction.atomic
def trading_kill(*, actor: str, reason: str) -> TradingState:
    """The kill switch from a process that holds no venue credentials (the dashboard): halt,
    and once that commits the router cancels every open order (the exchange's cancel stage)."""
    state = trading_set(state=T.HALTED, actor=actor, reason=reason, kill=True)
    pipeline.after_commit(pipeline.CANCEL, actor, state.reason)
    return state


@transaction.atomic
def pause_set(*, target: Strategy | Instrument, paused: bool, actor: str, reason: str) -> Strategy | Instrument:
    """Pause or resume one strategy or instrument, with a reason; audited. Under the trading-state
    lock, like every evaluation, so a decision sees a pause either wholly or not at all."""
    reason = _reason_required(reason)
    trading_state_locked()
    row = type(target).objects.select_for_update().get(pk=target.pk)
    kind, name = ("strategy", row.slug) if isinstance(row, Strategy) else ("instrument", row.symbol)
    previous = row.paused
    row.paused, row.pause_reason = paused, reason if paused else ""
    row.paused_by, row.paused_at = actor, timezone.now()
    row.save(update_fields=["paused", "pause_reason", "paused_by", "paused_at"])
    audit_record(
        kind=f"{kind}.{'paused' if paused else 'resumed'}",
        actor=actor,
        payload={kind: name, "paused": paused, "previous": previous, "reason": reason},
    )
    return row


def routing_refusal_locked(*, proposal: Proposal | None = None) -> str | None:
    """Why no order may be sent now (for `proposal`, when given), or None. Call inside a
    transaction: it holds the trading-state row lock, so a halt committed before it is seen,
    and one committed after it waits for the caller's transaction."""
    state = trading_state_locked()
    if state.halted or state.state not in T.values:
        return f"trading halted: {state.reason}"
    if proposal is not None:
        if state.state == T.REDUCE_ONLY and proposal.intent != Proposal.Intent.CLOSE:
            return f"trading is reduce-only: only closes are sent ({state.reason})"
        strategy = Strategy.objects.filter(pk=proposal.strategy_id, paused=True).values_list("slug", "pause_reason").first()
        if strategy:
            return "strategy {} is paused: {}".format(*strategy)
        instrument = Instrument.objects.filter(pk=proposal.instrument_id, paused=True).values_list("symbol", "pause_reason").first()
        if instrument:
            return "instrument {} is paused: {}".format(*instrument)
    tripped = breakers_blocking()
    if tripped:
        return "circuit breaker tripped: " + ", ".join(tripped)
    return None


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def breaker_trip(*, name: str, actor: str, reason: str) -> CircuitBreaker:
    breaker, _ = CircuitBreaker.objects.select_for_update().get_or_create(name=name)
    if not breaker.tripped:
        breaker.tripped, breaker.reason, breaker.since, breaker.changed_by = True, reason, timezone.now(), actor
        breaker.save()
        audit_record(kind="breaker.tripped", actor=actor, payload={"breaker": name, "reason": reason})
        alert_raise(
            kind=BREAKER_TRIPPED,
            subject=f"Circuit breaker {name} tripped by {actor}: {reason}",
            actor=actor,
            details={"breaker": name, "reason": reason, "user": actor},
        )
    return breaker


@transaction.atomic
def breaker_reset(*, name: str, actor: str, reason: str) -> CircuitBreaker:
    breaker = CircuitBreaker.objects.select_for_update().get(name=name)
    if breaker.tripped and name in LOSS_BREAKERS:
        raise FourEyesRequired(
            f"four-eyes: {name} is reset by a request (breaker reset) and a risk officer's approval (breaker approve-reset)"
        )
    if breaker.tripped:
        breaker.tripped, breaker.reason, breaker.since, breaker.changed_by = False, reason, timezone.now(), actor
        breaker.save()
        audit_record(kind="breaker.reset", actor=actor, payload={"breaker": name, "reason": reason})
    return breaker


# --- venue health, as the router measures it ------------------------------------------


def _venue_update(venue: str, **fields) -> None:
    """Update the venue's record (one statement: the router writes it on every venue call),
    creating it the first time a venue is seen."""
    rows = VenueHealth.objects.filter(venue=venue)
    if not rows.update(**fields):
        VenueHealth.objects.get_or_create(venue=venue)
        rows.update(**fields)


def venue_probe_record(*, venue: str, live: bool, healthy: bool, detail: str) -> None:
    """The router's latest health probe of its venue (credential-free detail)."""
    _venue_update(venue, live=live, healthy=healthy, detail=detail[:300], checked_at=timezone.now())


# While a venue keeps answering, its record's last answer (time and latency, shown in admin) is
# rewritten at most this often: the router calls the venue three times per order, and each call
# was a write and a commit of the same row.
VENUE_OK_REWRITE_SECONDS = 1


def venue_call_ok(*, venue: str, latency_ms: int) -> None:
    """A venue answered: the error streak ends, at once. One conditional statement, which writes
    only when there is a streak to end or the last answer recorded is a second old. A venue
    with no record yet gets one from the router's next probe or error."""
    now = timezone.now()
    due = Q(consecutive_errors__gt=0) | Q(last_ok_at=None) | Q(last_ok_at__lt=now - timedelta(seconds=VENUE_OK_REWRITE_SECONDS))
    VenueHealth.objects.filter(due, venue=venue).update(consecutive_errors=0, last_ok_at=now, last_latency_ms=latency_ms)


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def venue_call_failed(*, venue: str, summary: str) -> int:
    """A venue error or reject (credential-free summary). Returns the errors in a row now."""
    _venue_update(
        venue, consecutive_errors=F("consecutive_errors") + 1, last_error=summary[:300], last_error_at=timezone.now()
    )
    return VenueHealth.objects.select_for_update().get(venue=venue).consecutive_errors


def venue_error_streak_reset(*, venue: str) -> None:
    _venue_update(venue, consecutive_errors=0)


# --- the loss-limit breakers -------------------------------------------------------------


class FourEyesRequired(ValueError):
    """A change that one person alone may not make (the message says what it needs)."""


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def loss_breaker_trip(*, name: str, actor: str, reason: str) -> CircuitBreaker:
    """Trip a loss-limit breaker and set trading to reduce-only (not halted: closes still
    pass), each audited; the trip's audit event carries `alert: true` for whoever watches
    the trail. Halted trading stays halted. Idempotent: a tripped breaker is left alone."""
    if name not in LOSS_BREAKERS:
        raise ValueError(f"{name} is not a loss-limit breaker ({', '.join(LOSS_BREAKERS)})")
    state = trading_state_locked()
    breaker, _ = CircuitBreaker.objects.select_for_update().get_or_create(name=name)
    if breaker.tripped:
        return breaker
    now = timezone.now()
    breaker.tripped, breaker.reason, breaker.since, breaker.changed_by = True, reason[:500], now, actor
    breaker.reset_requested_by, breaker.reset_requested_at, breaker.reset_request_reason = "", None, ""
    breaker.save()
    audit_record(
        kind="breaker.tripped",
        actor=actor,
        payload={"breaker": name, "reason": breaker.reason, "trading": T.REDUCE_ONLY, "alert": True},
    )
    alert_raise(
        kind=BREAKER_TRIPPED,
        subject=f"Circuit breaker {name} tripped by {actor}: {breaker.reason}; trading is reduce-only",
        actor=actor,
        details={"breaker": name, "reason": breaker.reason, "user": actor, "trading": T.REDUCE_ONLY},
    )
    if state.state == T.ENABLED:
        trading_set(state=T.REDUCE_ONLY, actor=actor, reason=f"{name} tripped: {breaker.reason}"[:500])
    return breaker


def loss_breakers_enforce(*, context: dict, rules: dict, actor: str) -> list[str]:
    """Trip each loss-limit breaker whose portfolio limit these inputs are past (the engine
    says which); the names tripped now."""
    tripped = []
    for name, why in engine.loss_breakers_crossed(context=context, rules=rules):
        if not CircuitBreaker.objects.filter(name=name, tripped=True).exists():
            loss_breaker_trip(name=name, actor=actor, reason=why)
            tripped.append(name)
    return tripped


def loss_limits_enforce_now(*, actor: str, at) -> list[str]:
    """After closing fills are booked: the portfolio's realized losses (on the UTC day of
    `at`, and since the high-water mark) against the ruleset in force; trips the breakers
    they are past."""
    ruleset = ruleset_current()
    if ruleset is None or not ruleset.params or not engine.has_loss_limits(ruleset.params):
        return []
    return loss_breakers_enforce(context=decision_context_losses(day=at), rules=ruleset.params, actor=actor)


@transaction.atomic
def loss_breaker_reset_request(*, name: str, user: str, reason: str) -> CircuitBreaker:
    """Ask for a loss-limit breaker's reset (four eyes: another risk officer approves it)."""
    reason = _reason_required(reason)
    breaker = CircuitBreaker.objects.select_for_update().filter(name=name, tripped=True).first()
    if breaker is None or name not in LOSS_BREAKERS:
        raise ValueError(f"{name} is not a tripped loss-limit breaker")
    breaker.reset_requested_by, breaker.reset_requested_at, breaker.reset_request_reason = user, timezone.now(), reason
    breaker.save(update_fields=["reset_requested_by", "reset_requested_at", "reset_request_reason"])
    audit_record(kind="breaker.reset_requested", actor=f"operator:{user}", payload={"breaker": name, "reason": reason})
    return breaker


@transaction.atomic
def loss_breaker_reset_approve(*, name: str, user: str) -> CircuitBreaker:
    """Approve a requested reset: `user` must be a risk officer other than who asked (the
    caller checks the role). Trading stays reduce-only until an operator enables it."""
    breaker = CircuitBreaker.objects.select_for_update().filter(name=name, tripped=True).first()
    if breaker is None or name not in LOSS_BREAKERS:
        raise ValueError(f"{name} is not a tripped loss-limit breaker")
    if not breaker.reset_requested_by:
        raise ValueError(f"no reset of {name} was requested (breaker reset {name} --reason TEXT --user U)")
    if breaker.reset_requested_by == user:
        raise FourEyesRequired(f"four-eyes: {user} requested this reset; a different risk officer must approve it")
    requested_by, reason = breaker.reset_requested_by, breaker.reset_request_reason
    breaker.tripped, breaker.reason, breaker.since, breaker.changed_by = False, reason, timezone.now(), f"operator:{user}"
    breaker.reset_requested_by, breaker.reset_requested_at, breaker.reset_request_reason = "", None, ""
    breaker.save()
    audit_record(
        kind="breaker.reset",
        actor=f"operator:{user}",
        payload={"breaker": name, "reason": reason, "requested_by": requested_by, "approved_by": user},
    )
    return breaker
