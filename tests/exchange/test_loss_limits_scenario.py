"""Post-ALPHA risk through the sandbox, in FULL mode: losing closes (made by moving the
reference price) start a cooldown that blocks the next open and lifts after M minutes; the
portfolio's daily loss past its limit trips `daily_loss_limit`, which makes trading
reduce-only; a close still passes; every decision of the scenario replays identically.

The clock is an input: django's timezone.now is the test's clock, never a sleep."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from governance.models import CircuitBreaker, Decision, Proposal, Ruleset, TradingState
from governance.services.controls import trading_enable
from governance.services.rulesets import ruleset_new_draft, ruleset_publish
from ledger.models import RealizedPnl
from tests.builders import client_for, make_agent, post_proposal, seed

START = datetime(2026, 12, 2, 9, 0, tzinfo=dt_timezone.utc)


class Clock:
    def __init__(self, at):
        self.at = at

    def __call__(self):
        return self.at

    def advance(self, **delta):
        self.at += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(START)
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def full_mode(clock, commits):
    seed()
    current = Ruleset.objects.filter(status="published").order_by("-version").first()
    draft = ruleset_new_draft(source=current, actor="test")
    draft.mode = "full"
    draft.loss_cooldown_losses = 2
    draft.loss_cooldown_minutes = 30
    draft.max_daily_loss_strategy = "1000"
    draft.max_daily_loss_asset = "1000"
    draft.max_daily_loss_portfolio = "40"
    draft.max_drawdown_strategy = "1000"
    draft.max_drawdown_portfolio = "1000"
    draft.save()
    ruleset_publish(ruleset=draft, actor="test")
    trading_enable(actor="test", reason="tests")
    return client_for(make_agent()[1])


def propose(api, clock, *, side="buy", quantity="0.010", reference="65000", intent="open"):
    body = {
        "strategy": "demo",
        "symbol": "BTCUSDT",
        "side": side,
        "quantity": quantity,
        "order_type": "market",
        "reference_price": reference,
        "expected_slippage_bps": 1,
        "confidence": 0.95,
        "signal_time": clock().isoformat(),
        "intent": intent,
    }
    created = post_proposal(api, body)
    assert created.status_code == 202, created.content
    return api.get(f"/api/v1/proposals/{created.json()['id']}/").json()


def checks(answer):
    return {c["rule"]: c for c in answer["decision"]["checks"]}


def failed(answer):
    return [c["rule"] for c in answer["decision"]["checks"] if not c["passed"]]


def test_losing_closes_cool_down_the_book_then_the_daily_loss_limit_makes_trading_reduce_only(full_mode, clock):
    api = full_mode
    # Long 0.02 BTC at 65006.5, then two losing closes of 0.005 with the price moved to 64000.
    assert propose(api, clock, quantity="0.020")["status"] == "filled"
    clock.advance(minutes=1)
    for _ in range(2):
        close = propose(api, clock, side="sell", quantity="0.005", reference="64000", intent="close")
        assert close["status"] == "filled", close
        clock.advance(seconds=10)
    last_loss_at = clock.at - timedelta(seconds=10)
    assert RealizedPnl.objects.count() == 2 and all(r.amount < 0 for r in RealizedPnl.objects.all())

    # The next open on demo BTCUSDT is blocked by the cooldown alone (30 minutes from the last loss).
    blocked = propose(api, clock)
    assert blocked["status"] == "blocked"
    assert failed(blocked) == ["loss_cooldown"]
    until = (last_loss_at + timedelta(minutes=30)).isoformat()
    assert checks(blocked)["loss_cooldown"]["detail"] == (
        f"2 consecutive losing closes on demo BTCUSDT; opens blocked until {until} (30 min cooldown)"
    )
    assert [c["rule"] for c in blocked["decision"]["checks"]][-3:] == ["daily_loss", "drawdown", "loss_cooldown"]

    # One microsecond before the cooldown ends it still blocks; at its end it has lifted.
    clock.at = last_loss_at + timedelta(minutes=30) - timedelta(microseconds=1)
    assert failed(propose(api, clock)) == ["loss_cooldown"]
    clock.at = last_loss_at + timedelta(minutes=30)
    reopened = propose(api, clock)
    assert reopened["status"] == "filled" and failed(reopened) == []
    assert checks(reopened)["loss_cooldown"]["passed"] is True

    # A large losing close (price moved to 60000) takes the day's portfolio loss past 40:
    # at fill time daily_loss_limit trips and trading becomes reduce-only, not halted.
    clock.advance(minutes=1)
    big = propose(api, clock, side="sell", quantity="0.010", reference="60000", intent="close")
    assert big["status"] == "filled"
    assert sum(r.amount for r in RealizedPnl.objects.all()) < -40
    assert CircuitBreaker.objects.get(name="daily_loss_limit").tripped
    state = TradingState.objects.get()
    assert state.state == "reduce_only" and state.reason.startswith("daily_loss_limit tripped: portfolio realized PnL today")

    # Opens are refused; the daily loss check says why as well.
    clock.advance(minutes=1)
    refused = propose(api, clock)
    assert refused["status"] == "blocked"
    assert checks(refused)["trading_enabled"]["detail"] == "trading is reduce-only: only closes pass"
    assert not checks(refused)["daily_loss"]["passed"]
    assert checks(refused)["circuit_breaker"]["passed"], "a loss-limit breaker does not stop closes"

    # A close still passes every check and is filled, at a loss again.
    close = propose(api, clock, side="sell", quantity="0.005", reference="59000", intent="close")
    assert close["status"] == "filled" and failed(close) == []
    for rule in ("daily_loss", "drawdown", "loss_cooldown"):
        assert checks(close)[rule]["passed"] is True

    # Every decision of the scenario replays identically.
    assert Decision.objects.count() == Proposal.objects.count() == 9
    out = StringIO()
    call_command("replay_decision", "--all", stdout=out, stderr=StringIO())
    assert out.getvalue().splitlines() == ["identical: 9, differing: 0"]
