"""The engine under each trading state and pause: exact details under `trading_enabled` and
`instrument_enabled`, and contexts stored before states and pauses decided exactly as before.

No database: plain data in and out (the inputs of tests/governance/test_engine.py)."""

import pytest

from tests.governance.test_engine import check, decide, failed

# A close that passes every other check: FULL mode, a long position of 0.5 to sell from.
CLOSE = {"proposal": {"side": "sell", "intent": "close"}, "rules": {"mode": "full"}}
LONG = {"position_quantity": "0.5", "closable_quantity": "0.5", "has_open_position": True, "open_positions": 1}


def state(name, reason="desk call", **more):
    return {"trading_state": name, "trading_enabled": name == "enabled", "trading_reason": reason,
            "strategy_paused": None, "instrument_paused": None, **more}


def test_enabled_lets_a_sound_proposal_through_with_the_old_detail():
    result = decide(context=state("enabled"))
    assert result["outcome"] == "approve"
    assert check(result, "trading_enabled") == {"rule": "trading_enabled", "passed": True, "detail": "trading is enabled"}


def test_halted_blocks_with_its_reason():
    result = decide(context=state("halted", "venue maintenance"))
    assert failed(result) == ["trading_enabled"] and result["outcome"] == "block"
    assert check(result, "trading_enabled")["detail"] == "trading is halted: venue maintenance"


def test_halted_blocks_a_close_too():
    result = decide(proposal=CLOSE["proposal"], rules=CLOSE["rules"], context={**LONG, **state("halted", "stop")})
    assert failed(result) == ["trading_enabled"]
    assert check(result, "trading_enabled")["detail"] == "trading is halted: stop"


def test_reduce_only_blocks_an_opening_order():
    result = decide(context=state("reduce_only", "unwinding"))
    assert failed(result) == ["trading_enabled"] and result["outcome"] == "block"
    assert check(result, "trading_enabled")["detail"] == "trading is reduce-only: only closes pass"


def test_reduce_only_blocks_an_oversized_opening_order_rather_than_cutting_it_down():
    result = decide(proposal={"quantity": "1.0000"}, context=state("reduce_only"))
    assert result["outcome"] == "block" and result["approved_quantity"] is None


def test_reduce_only_lets_a_close_through():
    result = decide(proposal=CLOSE["proposal"], rules=CLOSE["rules"], context={**LONG, **state("reduce_only", "unwinding")})
    assert result["outcome"] == "approve", failed(result)
    assert check(result, "trading_enabled") == {
        "rule": "trading_enabled", "passed": True, "detail": "trading is reduce-only; a close passes",
    }


def test_a_paused_strategy_is_blocked_naming_it_and_why():
    result = decide(context=state("enabled", strategy_paused="drawdown review"))
    assert failed(result) == ["trading_enabled"]
    assert check(result, "trading_enabled")["detail"] == "strategy demo is paused: drawdown review"


def test_a_paused_strategy_cannot_close_in_reduce_only_either():
    context = {**LONG, **state("reduce_only", strategy_paused="frozen")}
    result = decide(proposal=CLOSE["proposal"], rules=CLOSE["rules"], context=context)
    assert check(result, "trading_enabled")["detail"] == "strategy demo is paused: frozen"


def test_halted_is_named_before_a_strategy_pause():
    result = decide(context=state("halted", "all stop", strategy_paused="frozen"))
    assert check(result, "trading_enabled")["detail"] == "trading is halted: all stop"


def test_a_paused_instrument_fails_instrument_enabled_alone():
    result = decide(context=state("enabled", instrument_paused="listing review"))
    assert failed(result) == ["instrument_enabled"] and result["outcome"] == "block"
    assert check(result, "instrument_enabled")["detail"] == "BTCUSDT is paused: listing review"
    assert check(result, "trading_enabled")["passed"]


def test_a_disabled_instrument_reads_disabled_even_when_paused():
    result = decide(context={**state("enabled", instrument_paused="x"), "instrument": {
        "enabled": False, "min_quantity": "0.0001", "quantity_step": "0.0001"}})
    assert check(result, "instrument_enabled")["detail"] == "BTCUSDT is disabled"


@pytest.mark.parametrize("name", ["paused", "", "ENABLED"])
def test_a_trading_state_the_engine_does_not_know_blocks(name):
    result = decide(context=state(name, "odd"))
    assert failed(result) == ["trading_enabled"]
    assert check(result, "trading_enabled")["detail"] == "trading is halted: odd"


# --- contexts stored before trading states and pauses -----------------------------------


def test_an_old_enabled_context_reads_as_it_always_did():
    result = decide(context={"trading_enabled": True, "trading_reason": "x"})
    assert check(result, "trading_enabled")["detail"] == "trading is enabled"
    assert check(result, "instrument_enabled")["detail"] == "BTCUSDT is enabled"


@pytest.mark.parametrize("reason, detail", [("maintenance", "trading is halted: maintenance"), ("", "trading is halted: no reason given")])
def test_an_old_halted_context_reads_as_it_always_did(reason, detail):
    result = decide(context={"trading_enabled": False, "trading_reason": reason})
    assert check(result, "trading_enabled")["detail"] == detail


def test_an_old_context_with_trading_enabled_blocks_nothing_new_for_a_close():
    # Before reduce-only existed a close under an enabled switch was never stopped by trading_enabled.
    result = decide(proposal=CLOSE["proposal"], rules=CLOSE["rules"], context={**LONG, "trading_enabled": True})
    assert result["outcome"] == "approve"
