"""Trading controls: the global switch, circuit breakers, and the venue health that the
router reports (the execution node reads it; nodes never talk to a venue)."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from governance.models import CircuitBreaker, TradingState, VenueHealth
from governance.selectors.controls import breakers_tripped
from ledger.services import audit_record


def trading_state_locked() -> TradingState:
    state, _ = TradingState.objects.select_for_update().get_or_create(pk=1)
    return state


@transaction.atomic
def trading_set(*, enabled: bool, actor: str, reason: str) -> TradingState:
    state = trading_state_locked()
    previous = state.enabled
    state.enabled, state.reason, state.changed_by, state.changed_at = enabled, reason, actor, timezone.now()
    state.save()
    audit_record(
        kind="trading.enabled" if enabled else "trading.halted",
        actor=actor,
        payload={"enabled": enabled, "previous": previous, "reason": reason},
    )
    return state


def trading_enable(*, actor: str, reason: str) -> TradingState:
    return trading_set(enabled=True, actor=actor, reason=reason)


def trading_halt(*, actor: str, reason: str) -> TradingState:
    return trading_set(enabled=False, actor=actor, reason=reason)


def routing_refusal_locked() -> str | None:
    """Why no order may be sent now, or None. Call inside a transaction: it holds the
    trading-state row lock, so a halt committed before it is seen, and one committed
    after it waits for the caller's transaction."""
    state = trading_state_locked()
    if not state.enabled:
        return f"trading halted: {state.reason}"
    tripped = breakers_tripped()
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
    return breaker


@transaction.atomic
def breaker_reset(*, name: str, actor: str, reason: str) -> CircuitBreaker:
    breaker = CircuitBreaker.objects.select_for_update().get(name=name)
    if breaker.tripped:
        breaker.tripped, breaker.reason, breaker.since, breaker.changed_by = False, reason, timezone.now(), actor
        breaker.save()
        audit_record(kind="breaker.reset", actor=actor, payload={"breaker": name, "reason": reason})
    return breaker


# --- venue health, as the router measures it ------------------------------------------


def _venue_row(venue: str):
    """The venue's record as an update target (created the first time a venue is seen)."""
    rows = VenueHealth.objects.filter(venue=venue)
    if not rows.exists():
        VenueHealth.objects.get_or_create(venue=venue)
    return rows


def venue_probe_record(*, venue: str, live: bool, healthy: bool, detail: str) -> None:
    """The router's latest health probe of its venue (credential-free detail)."""
    _venue_row(venue).update(live=live, healthy=healthy, detail=detail[:300], checked_at=timezone.now())


def venue_call_ok(*, venue: str, latency_ms: int) -> None:
    """A venue answered: the error streak ends."""
    _venue_row(venue).update(consecutive_errors=0, last_ok_at=timezone.now(), last_latency_ms=latency_ms)


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def venue_call_failed(*, venue: str, summary: str) -> int:
    """A venue error or reject (credential-free summary). Returns the errors in a row now."""
    rows = _venue_row(venue)
    rows.update(consecutive_errors=F("consecutive_errors") + 1, last_error=summary[:300], last_error_at=timezone.now())
    return rows.select_for_update().get().consecutive_errors


def venue_error_streak_reset(*, venue: str) -> None:
    _venue_row(venue).update(consecutive_errors=0)
