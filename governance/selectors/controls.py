"""The controls in force: ruleset, trading state, circuit breakers, the venue's health."""


from django.utils import timezone

from governance import engine
from governance.models import (
    QUORUM_DEFAULT,
    CircuitBreaker,
    Node,
    Ruleset,
    TradingState,
    VenueHealth,
)

# A venue health record older than this says nothing about the venue now (the router
# probes every few seconds while it runs).
VENUE_HEALTH_FRESH_SECONDS = 15
# The loss-limit breakers: tripped, they set trading to reduce-only rather than stop
# everything, so positions can still be closed; resetting one takes four eyes.
LOSS_BREAKERS = (engine.DAILY_LOSS_BREAKER, engine.DRAWDOWN_BREAKER)


def ruleset_current() -> Ruleset | None:
    return Ruleset.objects.filter(status=Ruleset.Status.PUBLISHED).order_by("-version").first()


def quorum_size(rules: dict | None) -> int:
    """Approvals needed, from a ruleset's params (a decision's `rules`).

    No ruleset yet: the model's default. A value that is not a whole number of nodes
    cannot come from a published ruleset; it asks for every node, never for fewer."""
    if rules is None:
        return QUORUM_DEFAULT
    try:
        required = int(rules["quorum_required"])
    except (KeyError, TypeError, ValueError):
        return len(Node.values)
    return min(max(required, 1), len(Node.values))


def quorum_in_force() -> int:
    ruleset = ruleset_current()
    return quorum_size(ruleset.params if ruleset else None)


def trading_state() -> TradingState:
    """The trading switch as stored (halted when no row exists yet)."""
    return TradingState.objects.filter(pk=1).first() or TradingState(pk=1)


def breakers_tripped() -> list[str]:
    return list(CircuitBreaker.objects.filter(tripped=True).order_by("name").values_list("name", flat=True))


def breakers_blocking() -> list[str]:
    """The tripped breakers that stop every order (the `circuit_breaker` check, routing): all
    but the loss-limit ones, which act through the reduce-only trading state they set."""
    return [name for name in breakers_tripped() if name not in LOSS_BREAKERS]


def venue_health_latest(*, now=None) -> tuple[bool, str]:
    """(healthy, detail) of the venue the router last probed, from the router's record."""
    now = now or timezone.now()
    record = VenueHealth.objects.exclude(checked_at=None).order_by("-checked_at").first()
    if record is None:
        return False, "no venue health recorded yet (is the router running?)"
    age = (now - record.checked_at).total_seconds()
    if age > VENUE_HEALTH_FRESH_SECONDS:
        return False, f"venue health of {record.venue} is {age:.0f} s old (the router has not probed it since)"
    return record.healthy, record.detail


def pause_reason(target) -> str | None:
    """A paused strategy's or instrument's reason (never None while paused), or None."""
    return target.pause_reason if target.paused else None


def controls_context_now(*, context: dict, proposal) -> dict:
    """A stored decision context with the controls as they are now: the trading state, the
    strategy's and the instrument's pauses, the breakers and the instrument's `enabled` (what
    the execution node and force-execute re-check: a decision made earlier says nothing of a
    halt since)."""
    state = trading_state()
    return {
        **context,
        "trading_enabled": state.enabled,
        "trading_reason": state.reason,
        "trading_state": state.state,
        "strategy_paused": pause_reason(proposal.strategy),
        "instrument_paused": pause_reason(proposal.instrument),
        "tripped_breakers": breakers_blocking(),
        "instrument": {**context["instrument"], "enabled": proposal.instrument.enabled},
    }
