"""The post-ALPHA loss checks: daily_loss, drawdown, loss_cooldown.

Each holds exactly at its limit and fails one step past it; a close always passes them;
in ALPHA each passes with the contract's detail; a ruleset published before them decides
with the fifteen checks it always had."""

import pytest

from governance.engine import CHECK_ORDER, CHECK_ORDER_BEFORE_LOSS_LIMITS, evaluate
from tests.builders import CONTRACT_ORDER, CONTRACT_ORDER_BEFORE_LOSS_LIMITS
from tests.governance.test_engine import (
    CONTEXT,
    PROPOSAL,
    RULES,
    assert_only_failure,
    check,
    decide,
)

FULL = {"mode": "full"}
NO_LOSSES = {
    "realized_today": {"strategy": "0", "asset": "0", "portfolio": "0"},
    "drawdown": {"strategy": "0", "portfolio": "0"},
    "loss_streak": {"count": 0, "ended_at": None},
}
ALPHA_DETAIL = "realized-only: no realized losses in ALPHA"
# RULES: daily loss limits 2000 (strategy), 5000 (asset), 10000 (portfolio); drawdown 5000
# (strategy), 20000 (portfolio); cooldown 30 minutes after 3 losing closes.


def today(strategy="0", asset="0", portfolio="0"):
    return {**NO_LOSSES, "realized_today": {"strategy": strategy, "asset": asset, "portfolio": portfolio}}


def drawdown(strategy="0", portfolio="0"):
    return {**NO_LOSSES, "drawdown": {"strategy": strategy, "portfolio": portfolio}}


def streak(count, ended_at="2026-11-25T11:45:00+00:00"):
    # The proposal is received at 2026-11-25T12:00:01+00:00.
    return {**NO_LOSSES, "loss_streak": {"count": count, "ended_at": ended_at}}


def test_a_ruleset_with_loss_limits_decides_all_eighteen_checks_in_contract_order():
    assert CHECK_ORDER == CONTRACT_ORDER
    assert CHECK_ORDER_BEFORE_LOSS_LIMITS == CONTRACT_ORDER_BEFORE_LOSS_LIMITS
    assert [c["rule"] for c in decide(rules=FULL, context=NO_LOSSES)["checks"]] == list(CONTRACT_ORDER)


def test_a_ruleset_published_before_the_loss_limits_decides_with_its_fifteen_checks():
    old = {k: v for k, v in RULES.items() if not k.startswith(("max_daily_loss", "max_drawdown", "loss_cooldown"))}
    result = evaluate(proposal=PROPOSAL, context=CONTEXT, rules=old)
    assert [c["rule"] for c in result["checks"]] == list(CONTRACT_ORDER_BEFORE_LOSS_LIMITS)


@pytest.mark.parametrize("intent", ["open", "close"])
def test_in_alpha_each_loss_check_passes_with_the_contract_detail_whatever_the_inputs(intent):
    context = {**today("-99999", "-99999", "-99999"), **drawdown("-99999", "-99999"), "loss_streak": {"count": 9, "ended_at": "2026-11-25T12:00:00+00:00"}}
    result = decide(proposal={"intent": intent}, context=context)
    for rule in ("daily_loss", "drawdown", "loss_cooldown"):
        assert check(result, rule) == {"rule": rule, "passed": True, "detail": ALPHA_DETAIL}


def test_a_context_without_the_loss_inputs_reads_as_no_realized_losses():
    result = decide(rules=FULL)
    assert result["outcome"] == "approve"


# --- daily_loss ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope,at,past",
    [("strategy", "-2000", "-2000.01"), ("asset", "-5000", "-5000.01"), ("portfolio", "-10000", "-10000.01")],
)
def test_daily_loss_passes_exactly_at_each_limit_and_blocks_one_step_past_it(scope, at, past):
    result = decide(rules=FULL, context=today(**{scope: at}))
    assert result["outcome"] == "approve"
    assert f"{at} >= -" in check(result, "daily_loss")["detail"]
    result = decide(rules=FULL, context=today(**{scope: past}))
    assert_only_failure(result, "daily_loss")
    assert f"{past} < -" in check(result, "daily_loss")["detail"]


def test_daily_loss_detail_names_each_scope_and_its_limit():
    detail = check(decide(rules=FULL, context=today("-1", "-2", "-3")), "daily_loss")["detail"]
    assert detail == "realized PnL today: strategy demo -1 >= -2000; BTCUSDT -2 >= -5000; portfolio -3 >= -10000"


def test_daily_loss_never_blocks_a_close():
    result = decide(proposal={"intent": "close", "side": "sell"}, rules=FULL, context={**today("-1E+9", "-1E+9", "-1E+9"), "position_quantity": "1", "closable_quantity": "1", "has_open_position": True})
    assert check(result, "daily_loss") == {"rule": "daily_loss", "passed": True, "detail": "a close is never blocked by the daily loss limit"}
    assert result["outcome"] == "approve"


# --- drawdown --------------------------------------------------------------------------


@pytest.mark.parametrize("scope,at,past", [("strategy", "-5000", "-5000.000001"), ("portfolio", "-20000", "-20000.01")])
def test_drawdown_passes_exactly_at_its_limit_and_blocks_one_step_past_it(scope, at, past):
    assert decide(rules=FULL, context=drawdown(**{scope: at}))["outcome"] == "approve"
    assert_only_failure(decide(rules=FULL, context=drawdown(**{scope: past})), "drawdown")


def test_drawdown_never_blocks_a_close():
    result = decide(proposal={"intent": "close", "side": "sell"}, rules=FULL, context={**drawdown("-99999", "-99999"), "position_quantity": "1", "closable_quantity": "1", "has_open_position": True})
    assert check(result, "drawdown")["passed"] is True
    assert result["outcome"] == "approve"


# --- loss_cooldown ---------------------------------------------------------------------


def test_cooldown_starts_exactly_at_the_losing_streak_and_not_one_loss_before():
    assert decide(rules=FULL, context=streak(2))["outcome"] == "approve"
    result = decide(rules=FULL, context=streak(3))
    assert_only_failure(result, "loss_cooldown")
    assert check(result, "loss_cooldown")["detail"] == (
        "3 consecutive losing closes on demo BTCUSDT; opens blocked until 2026-11-25T12:15:00+00:00 (30 min cooldown)"
    )


def test_cooldown_lifts_exactly_m_minutes_after_the_last_loss_by_the_stored_receive_time():
    # Received at 12:00:01: a streak ended at 11:30:01 has cooled down exactly now.
    assert decide(rules=FULL, context=streak(3, "2026-11-25T11:30:01+00:00"))["outcome"] == "approve"
    # One microsecond later it still blocks.
    assert_only_failure(decide(rules=FULL, context=streak(3, "2026-11-25T11:30:01.000001+00:00")), "loss_cooldown")


def test_a_cooldown_of_zero_minutes_never_blocks():
    assert decide(rules={**FULL, "loss_cooldown_minutes": 0}, context=streak(10, "2026-11-25T12:00:01+00:00"))["outcome"] == "approve"


def test_cooldown_never_blocks_a_close():
    result = decide(proposal={"intent": "close", "side": "sell"}, rules=FULL, context={**streak(5), "position_quantity": "1", "closable_quantity": "1", "has_open_position": True})
    assert check(result, "loss_cooldown") == {"rule": "loss_cooldown", "passed": True, "detail": "a close is never blocked by a loss cooldown"}
    assert result["outcome"] == "approve"


def test_a_loss_check_failure_is_a_block_never_a_modify():
    result = decide(proposal={"quantity": "1.0000"}, rules=FULL, context=today(portfolio="-10001"))
    assert result["outcome"] == "block"
