"""The loss-limit breakers: tripped, trading becomes reduce-only (closes still pass); their
reset takes four eyes, a request by one staff user and an approval by a different risk officer."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from governance import engine
from governance.models import CircuitBreaker, TradingState
from governance.roles import PermissionDenied
from governance.selectors.controls import breakers_blocking
from governance.services.controls import (
    FourEyesRequired,
    breaker_reset,
    loss_breaker_trip,
    loss_breakers_enforce,
    trading_enable,
)
from ledger.models import AuditEvent
from tests.builders import staff_member

RULES = {"mode": "full", "max_daily_loss_portfolio": "100", "max_drawdown_portfolio": "500"}


def losses(today="0", drawdown="0"):
    return {"realized_today": {"portfolio": today}, "drawdown": {"portfolio": drawdown}}


def breaker(*args, **options):
    out = StringIO()
    call_command("breaker", *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def test_a_portfolio_loss_exactly_at_its_limit_trips_nothing_and_one_step_past_trips_its_breaker():
    assert engine.loss_breakers_crossed(context=losses("-100", "-500"), rules=RULES) == []
    assert engine.loss_breakers_crossed(context=losses("-100.01", "-500.01"), rules=RULES) == [
        ("daily_loss_limit", "portfolio realized PnL today -100.01 < -100"),
        ("drawdown_limit", "portfolio realized PnL since high-water mark -500.01 < -500"),
    ]


def test_no_loss_breaker_trips_in_alpha_or_under_a_ruleset_without_loss_limits():
    assert engine.loss_breakers_crossed(context=losses("-1E+6"), rules={**RULES, "mode": "alpha"}) == []
    assert engine.loss_breakers_crossed(context=losses("-1E+6"), rules={"mode": "full"}) == []


def test_a_trip_makes_trading_reduce_only_is_audited_with_an_alert_and_does_not_stop_closes(trading_enabled):
    assert loss_breakers_enforce(context=losses("-100.5"), rules=RULES, actor="governance") == ["daily_loss_limit"]
    state = TradingState.objects.get()
    assert state.state == "reduce_only"
    assert state.reason == "daily_loss_limit tripped: portfolio realized PnL today -100.5 < -100"
    assert breakers_blocking() == []  # the circuit_breaker check and routing are not stopped
    event = AuditEvent.objects.filter(kind="breaker.tripped").get()
    assert '"alert":true' in event.payload and '"breaker":"daily_loss_limit"' in event.payload
    # Tripped already: nothing more happens.
    assert loss_breakers_enforce(context=losses("-200"), rules=RULES, actor="governance") == []


def test_a_halted_trading_stays_halted_when_a_loss_breaker_trips(seeded):
    loss_breaker_trip(name="drawdown_limit", actor="governance", reason="test")
    assert TradingState.objects.get().state == "halted"


def test_trading_cannot_be_enabled_while_a_loss_breaker_is_tripped(trading_enabled):
    loss_breaker_trip(name="daily_loss_limit", actor="governance", reason="test")
    with pytest.raises(ValueError, match="loss-limit breaker tripped: daily_loss_limit"):
        trading_enable(actor="test", reason="back to work")


def test_a_loss_breaker_is_never_reset_by_one_person(trading_enabled):
    loss_breaker_trip(name="daily_loss_limit", actor="governance", reason="test")
    with pytest.raises(FourEyesRequired, match="four-eyes"):
        breaker_reset(name="daily_loss_limit", actor="operator:someone", reason="done")
    assert CircuitBreaker.objects.get(name="daily_loss_limit").tripped


def test_the_reset_is_requested_by_one_user_and_approved_by_a_different_risk_officer(trading_enabled):
    staff_member("operator", "olga")
    staff_member("risk_officer", "rita")
    staff_member("risk_officer", "ravi")
    loss_breaker_trip(name="daily_loss_limit", actor="governance", reason="test")

    with pytest.raises(CommandError, match="no reset of daily_loss_limit was requested"):
        breaker("approve-reset", "daily_loss_limit", user="rita")
    assert "reset requested by operator:rita" in breaker("reset", "daily_loss_limit", reason="losses reviewed", user="rita")
    with pytest.raises(CommandError, match="four-eyes: rita requested this reset"):
        breaker("approve-reset", "daily_loss_limit", user="rita")
    with pytest.raises(PermissionDenied):
        breaker("approve-reset", "daily_loss_limit", user="olga")  # an operator approves nothing
    assert CircuitBreaker.objects.get(name="daily_loss_limit").tripped

    assert "daily_loss_limit: reset by operator:ravi" in breaker("approve-reset", "daily_loss_limit", user="ravi")
    row = CircuitBreaker.objects.get(name="daily_loss_limit")
    assert not row.tripped and row.reset_requested_by == ""
    event = AuditEvent.objects.filter(kind="breaker.reset").get()
    assert '"requested_by":"rita"' in event.payload and '"approved_by":"ravi"' in event.payload
    assert TradingState.objects.get().state == "reduce_only"  # an operator enables trading when ready
    trading_enable(actor="test", reason="limits reviewed")
