"""The pure rule engine: every rule passes, fails, and holds exactly at its limit.

No database: `governance.engine.evaluate` is plain Python over plain data.
"""

import copy
import decimal
from decimal import Decimal

import pytest

from governance import engine
from governance.engine import CHECK_ORDER, QUANTITY_BOUND, evaluate
from tests.builders import CONTRACT_ORDER

# A sound proposal: 0.0100 BTC at 50,000 = 500 notional, well inside every limit.
PROPOSAL = {
    "id": "00000000-0000-0000-0000-000000000001",
    "strategy": "demo",
    "symbol": "BTCUSDT",
    "side": "buy",
    "quantity": "0.0100",
    "order_type": "limit",
    "limit_price": "50000",
    "reference_price": "50000",
    "expected_slippage_bps": "5",
    "confidence": "0.80",
    "signal_time": "2026-11-25T12:00:00+00:00",
    "received_at": "2026-11-25T12:00:01+00:00",
    "intent": "open",
}
CONTEXT = {
    "trading_enabled": True,
    "trading_reason": "enabled for tests",
    "tripped_breakers": [],
    "instrument": {"enabled": True, "min_quantity": "0.0001", "quantity_step": "0.0001"},
    "position_quantity": "0",
    "closable_quantity": "0",
    "asset_exposure": "0",
    "strategy_exposure": "0",
    "gross_exposure": "0",
    "open_positions": 0,
    "has_open_position": False,
    "proposals_last_minute": 0,
}
RULES = {
    "version": 7,
    "mode": "alpha",
    "min_confidence": "0.60",
    "max_signal_age_seconds": "60",
    "max_slippage_bps": "25",
    "max_price_deviation_bps": "100",
    "max_order_notional": "10000",
    "default_strategy_budget": "50000",
    "max_gross_exposure": "200000",
    "max_open_positions": 10,
    "max_proposals_per_minute": 60,
    "quorum_required": 2,
    "vote_timeout_seconds": "10",
    "assets": {"BTCUSDT": {"max_position_quantity": "1", "max_exposure": "100000"}},
    "strategy_budgets": {"demo": "30000"},
    "max_daily_loss_strategy": "2000",
    "max_daily_loss_asset": "5000",
    "max_daily_loss_portfolio": "10000",
    "max_drawdown_strategy": "5000",
    "max_drawdown_portfolio": "20000",
    "loss_cooldown_losses": 3,
    "loss_cooldown_minutes": 30,
}


def inputs(proposal=None, context=None, rules=None):
    """Sound inputs with per-test overrides (nested dicts are replaced, not merged)."""
    return {
        "proposal": {**copy.deepcopy(PROPOSAL), **(proposal or {})},
        "context": {**copy.deepcopy(CONTEXT), **(context or {})},
        "rules": {**copy.deepcopy(RULES), **(rules or {})},
    }


def decide(proposal=None, context=None, rules=None):
    return evaluate(**inputs(proposal, context, rules))


def check(result, rule):
    return next(c for c in result["checks"] if c["rule"] == rule)


def failed(result):
    return [c["rule"] for c in result["checks"] if not c["passed"]]


def assert_only_failure(result, rule, outcome="block"):
    assert failed(result) == [rule]
    assert result["outcome"] == outcome


def test_a_sound_proposal_is_approved_with_its_own_quantity():
    result = decide()
    assert result["outcome"] == "approve"
    assert result["approved_quantity"] == "0.0100"
    assert failed(result) == []


def test_the_engine_order_is_the_contract_order():
    assert CHECK_ORDER == CONTRACT_ORDER
    assert set(QUANTITY_BOUND) == {
        "max_order_notional",
        "max_position",
        "asset_exposure",
        "strategy_budget",
        "portfolio_exposure",
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # approve
        {"proposal": {"quantity": "1.0000"}},  # modify
        {"context": {"trading_enabled": False}},  # block
        {"proposal": {"intent": "close"}},  # block, close path
    ],
    ids=["approve", "modify", "block", "close"],
)
def test_every_decision_lists_all_eighteen_checks_in_contract_order(overrides):
    result = decide(**overrides)
    assert tuple(c["rule"] for c in result["checks"]) == CONTRACT_ORDER
    for c in result["checks"]:
        assert set(c) == {"rule", "passed", "detail"}
        assert isinstance(c["passed"], bool)
        assert c["detail"]


def test_the_engine_does_not_change_its_inputs():
    given = inputs(proposal={"quantity": "1.0000"})
    before = copy.deepcopy(given)
    evaluate(**given)
    assert given == before


# --- trading_enabled, circuit_breaker, exits_enabled, instrument_enabled -------------


def test_it_blocks_when_trading_is_halted_and_says_why():
    result = decide(context={"trading_enabled": False, "trading_reason": "maintenance window"})
    assert_only_failure(result, "trading_enabled")
    assert "maintenance window" in check(result, "trading_enabled")["detail"]
    assert result["approved_quantity"] is None


def test_it_blocks_when_a_circuit_breaker_is_tripped_and_names_it():
    result = decide(context={"tripped_breakers": ["venue_latency", "venue_errors"]})
    assert_only_failure(result, "circuit_breaker")
    detail = check(result, "circuit_breaker")["detail"]
    assert "venue_errors" in detail and "venue_latency" in detail


def test_the_circuit_breaker_check_passes_when_none_is_tripped():
    assert check(decide(context={"tripped_breakers": []}), "circuit_breaker")["passed"]


def test_an_opening_order_passes_exits_enabled_even_in_alpha():
    result = decide(proposal={"intent": "open"}, rules={"mode": "alpha"})
    assert check(result, "exits_enabled")["passed"]


def test_a_close_is_blocked_by_exits_enabled_in_alpha_mode():
    # A real position to close, so exits_enabled is the only reason.
    result = decide(
        proposal={"intent": "close", "side": "sell"},
        context={"position_quantity": "0.5", "closable_quantity": "0.5", "has_open_position": True, "open_positions": 1},
        rules={"mode": "alpha"},
    )
    assert_only_failure(result, "exits_enabled")
    assert "alpha" in check(result, "exits_enabled")["detail"].lower()


def test_an_oversized_close_in_alpha_is_blocked_not_cut_down():
    # A close in alpha never gets through, also not cut down to some smaller size.
    result = decide(proposal={"intent": "close", "quantity": "5.0000"}, rules={"mode": "alpha"})
    assert result["outcome"] == "block"
    assert not check(result, "exits_enabled")["passed"]


def test_it_blocks_a_disabled_instrument():
    result = decide(context={"instrument": {**CONTEXT["instrument"], "enabled": False}})
    assert_only_failure(result, "instrument_enabled")
    assert "BTCUSDT" in check(result, "instrument_enabled")["detail"]


# --- min_confidence ---------------------------------------------------------------


def test_confidence_exactly_at_the_minimum_passes():
    result = decide(proposal={"confidence": "0.60"})
    assert result["outcome"] == "approve"
    assert check(result, "min_confidence")["detail"] == "confidence 0.60 >= minimum 0.60"


def test_confidence_one_unit_below_the_minimum_blocks():
    result = decide(proposal={"confidence": "0.59"})
    assert_only_failure(result, "min_confidence")
    assert check(result, "min_confidence")["detail"] == "confidence 0.59 < minimum 0.60"


def test_confidence_a_hair_below_the_minimum_still_blocks():
    assert not check(decide(proposal={"confidence": "0.599999999"}), "min_confidence")["passed"]


# --- signal_age -------------------------------------------------------------------


def test_a_signal_exactly_at_the_maximum_age_passes():
    result = decide(proposal={"signal_time": "2026-11-25T12:00:00+00:00", "received_at": "2026-11-25T12:01:00+00:00"})
    assert result["outcome"] == "approve"
    detail = check(result, "signal_age")["detail"]
    assert "60" in detail and "maximum 60s" in detail


def test_a_signal_one_microsecond_too_old_blocks():
    result = decide(
        proposal={"signal_time": "2026-11-25T12:00:00+00:00", "received_at": "2026-11-25T12:01:00.000001+00:00"}
    )
    assert_only_failure(result, "signal_age")
    assert check(result, "signal_age")["detail"] == "signal age 60.000001s > maximum 60s"


def test_signal_age_compares_instants_across_utc_offsets():
    # 13:00:30+01:00 is 12:00:30Z: 30 s old, not an hour.
    result = decide(proposal={"signal_time": "2026-11-25T13:00:30+01:00", "received_at": "2026-11-25T12:01:00+00:00"})
    assert check(result, "signal_age")["passed"]
    assert "30s" in check(result, "signal_age")["detail"]


def test_a_signal_slightly_ahead_of_the_receive_time_passes():
    # Clock skew is bounded by the API (5 s); the engine only caps the age.
    result = decide(proposal={"signal_time": "2026-11-25T12:00:03+00:00", "received_at": "2026-11-25T12:00:00+00:00"})
    assert check(result, "signal_age")["passed"]


# --- slippage ---------------------------------------------------------------------


def test_slippage_exactly_at_the_maximum_passes():
    result = decide(proposal={"expected_slippage_bps": "25"})
    assert result["outcome"] == "approve"
    assert check(result, "slippage")["detail"] == "expected slippage 25 bps <= maximum 25 bps"


def test_slippage_one_unit_over_the_maximum_blocks():
    result = decide(proposal={"expected_slippage_bps": "25.01"})
    assert_only_failure(result, "slippage")
    assert check(result, "slippage")["detail"] == "expected slippage 25.01 bps > maximum 25 bps"


# --- price_collar -----------------------------------------------------------------


@pytest.mark.parametrize("limit_price", ["50500", "49500"])
def test_a_limit_exactly_at_the_collar_passes_on_either_side(limit_price):
    # 500 / 50,000 = 100 bps, the collar; notional stays far below every cap.
    result = decide(proposal={"limit_price": limit_price})
    assert result["outcome"] == "approve"
    detail = check(result, "price_collar")["detail"]
    assert "100.00 bps" in detail and "collar 100 bps" in detail and "within" in detail


@pytest.mark.parametrize("limit_price", ["50500.01", "49499.99"])
def test_a_limit_one_cent_outside_the_collar_blocks(limit_price):
    result = decide(proposal={"limit_price": limit_price})
    assert_only_failure(result, "price_collar")
    detail = check(result, "price_collar")["detail"]
    assert limit_price in detail and "reference 50000" in detail and "outside collar 100 bps" in detail


def test_a_market_order_is_priced_at_the_reference_and_passes_the_collar():
    result = decide(proposal={"order_type": "market", "limit_price": None, "reference_price": "50000"})
    assert result["outcome"] == "approve"
    assert check(result, "price_collar")["passed"]


# --- max_order_notional -----------------------------------------------------------


def test_an_order_notional_exactly_at_the_maximum_passes():
    # 0.2000 x 50,000 = 10,000
    result = decide(proposal={"quantity": "0.2000"})
    assert result["outcome"] == "approve"
    detail = check(result, "max_order_notional")["detail"]
    assert detail == "order notional 10000.0000 <= maximum 10000"


def test_an_order_notional_one_step_over_the_maximum_is_cut_to_the_maximum():
    result = decide(proposal={"quantity": "0.2001"})
    assert_only_failure(result, "max_order_notional", outcome="modify")
    assert result["approved_quantity"] == "0.2000"
    assert check(result, "max_order_notional")["detail"] == "order notional 10005.0000 > maximum 10000"


def test_a_market_order_notional_is_counted_at_the_reference_price():
    result = decide(proposal={"order_type": "market", "limit_price": None, "reference_price": "100000", "quantity": "0.1001"})
    assert result["outcome"] == "modify"
    assert result["approved_quantity"] == "0.1000"


# --- max_position -----------------------------------------------------------------


def test_a_position_exactly_at_the_maximum_after_the_order_passes():
    # Position 0.9 + 0.1 = 1 = maximum (5,000 notional: inside every cap).
    result = decide(proposal={"quantity": "0.1000"}, context={"position_quantity": "0.9", "has_open_position": True})
    assert result["outcome"] == "approve"
    assert check(result, "max_position")["detail"] == "position after order 1.0000 <= maximum 1"


def test_a_position_one_step_over_the_maximum_is_cut_down():
    result = decide(proposal={"quantity": "0.1001"}, context={"position_quantity": "0.9", "has_open_position": True})
    assert_only_failure(result, "max_position", outcome="modify")
    assert result["approved_quantity"] == "0.1000"
    assert check(result, "max_position")["detail"] == "position after order 1.0001 > maximum 1"


def test_a_sell_that_deepens_a_short_counts_against_the_maximum_too():
    result = decide(
        proposal={"side": "sell", "quantity": "0.1001"},
        context={"position_quantity": "-0.9", "has_open_position": True},
    )
    assert_only_failure(result, "max_position", outcome="modify")
    assert result["approved_quantity"] == "0.1000"


def test_a_symbol_without_an_asset_limit_allows_no_position():
    result = decide(rules={"assets": {}})
    assert result["outcome"] == "block"
    assert "max_position" in failed(result) and "asset_exposure" in failed(result)
    assert "no limit configured for BTCUSDT" in check(result, "max_position")["detail"]


def test_a_buy_against_a_short_beyond_the_limit_is_never_cut_up_or_to_a_failing_quantity():
    # Short 1.5 with a limit of 1: a buy of 0.1 leaves |-1.4| > 1. The cap on the
    # other side (up to 2.5) must not turn this into a larger order, nor into one
    # that still fails.
    result = decide(
        proposal={"quantity": "0.1000", "limit_price": "1000", "reference_price": "1000"},
        context={"position_quantity": "-1.5", "has_open_position": True},
    )
    assert result["outcome"] == "block"
    assert failed(result) == ["max_position"]
    assert result["approved_quantity"] is None


def test_a_buy_against_a_short_beyond_the_limit_is_cut_only_to_a_quantity_that_passes():
    # Buy 3 against short 1.5 (limit 1): feasible 0.5..2.5; the notional cap (2,000 at
    # price 1,000) allows 2: modify to 2, which leaves a long of 0.5.
    result = decide(
        proposal={"quantity": "3.0000", "limit_price": "1000", "reference_price": "1000"},
        context={"position_quantity": "-1.5", "has_open_position": True},
        rules={"max_order_notional": "2000"},
    )
    assert result["outcome"] == "modify"
    assert result["approved_quantity"] == "2.0000"


# --- asset_exposure, strategy_budget, portfolio_exposure -----------------------------


@pytest.mark.parametrize(
    "rule, context_key, limit_overrides, label",
    [
        ("asset_exposure", "asset_exposure", {"assets": {"BTCUSDT": {"max_position_quantity": "1", "max_exposure": "20000"}}}, "BTCUSDT exposure"),
        ("strategy_budget", "strategy_exposure", {"strategy_budgets": {"demo": "20000"}}, "strategy demo exposure"),
        ("portfolio_exposure", "gross_exposure", {"max_gross_exposure": "20000"}, "gross exposure"),
    ],
)
class TestExposureCaps:
    def test_exposure_exactly_at_the_cap_after_the_order_passes(self, rule, context_key, limit_overrides, label):
        # 19,500 already + 0.0100 x 50,000 = 20,000
        result = decide(context={context_key: "19500"}, rules=limit_overrides)
        assert result["outcome"] == "approve"
        assert check(result, rule)["detail"] == f"{label} after order 20000.0000 <= maximum 20000"

    def test_exposure_one_step_over_the_cap_is_cut_to_what_fits(self, rule, context_key, limit_overrides, label):
        result = decide(proposal={"quantity": "0.0101"}, context={context_key: "19500"}, rules=limit_overrides)
        assert_only_failure(result, rule, outcome="modify")
        assert result["approved_quantity"] == "0.0100"
        assert check(result, rule)["detail"] == f"{label} after order 20005.0000 > maximum 20000"

    def test_exposure_already_at_the_cap_leaves_nothing_to_approve(self, rule, context_key, limit_overrides, label):
        result = decide(context={context_key: "20000"}, rules=limit_overrides)
        assert_only_failure(result, rule)
        assert result["approved_quantity"] is None


def test_a_strategy_without_its_own_budget_gets_the_default_budget():
    # No row for "other": the default 50,000 applies, so 40,000 + 10,000 fits exactly.
    result = decide(
        proposal={"strategy": "other", "quantity": "0.2000"},
        context={"strategy_exposure": "40000"},
    )
    assert check(result, "strategy_budget")["passed"]
    assert "maximum 50000" in check(result, "strategy_budget")["detail"]
    over = decide(proposal={"strategy": "other", "quantity": "0.2001"}, context={"strategy_exposure": "40000"})
    assert not check(over, "strategy_budget")["passed"]


# --- max_open_positions -----------------------------------------------------------


def test_a_new_position_that_reaches_the_maximum_count_passes():
    result = decide(context={"open_positions": 9})
    assert result["outcome"] == "approve"
    detail = check(result, "max_open_positions")["detail"]
    assert "9 open positions" in detail and "maximum 10" in detail


def test_a_new_position_beyond_the_maximum_count_blocks():
    result = decide(context={"open_positions": 10})
    assert_only_failure(result, "max_open_positions")
    detail = check(result, "max_open_positions")["detail"]
    assert "10 open positions" in detail and "exceeds maximum 10" in detail


def test_adding_to_an_open_position_does_not_count_as_a_new_one():
    result = decide(context={"open_positions": 10, "has_open_position": True, "position_quantity": "0.1"})
    assert check(result, "max_open_positions")["passed"]


# --- order_rate -------------------------------------------------------------------


def test_the_proposal_that_reaches_the_rate_limit_passes():
    # 59 before it: this is the 60th in the minute, the maximum.
    result = decide(context={"proposals_last_minute": 59})
    assert result["outcome"] == "approve"
    assert check(result, "order_rate")["detail"] == "59 proposals from this strategy in the last minute; maximum 60"


def test_one_proposal_over_the_rate_limit_blocks():
    result = decide(context={"proposals_last_minute": 60})
    assert_only_failure(result, "order_rate")
    assert check(result, "order_rate")["detail"] == "60 proposals from this strategy in the last minute; maximum 60"


# --- modify -----------------------------------------------------------------------


def test_modify_takes_the_tightest_quantity_cap_rounded_down_to_the_step():
    # 1 BTC at 65,000: notional cap 10,000 -> 0.153846..; budget 30,000 -> 0.4615..;
    # the tightest wins and is rounded DOWN to the step (never to nearest: 0.1538, not 0.1539).
    result = decide(proposal={"quantity": "1.0000", "limit_price": "65000", "reference_price": "65000"})
    assert result["outcome"] == "modify"
    assert result["approved_quantity"] == "0.1538"
    assert failed(result) == ["max_order_notional", "strategy_budget"]


def test_modify_rounds_down_to_a_coarse_step():
    result = decide(
        proposal={"quantity": "1.000", "limit_price": "65000", "reference_price": "65000"},
        context={"instrument": {"enabled": True, "min_quantity": "0.001", "quantity_step": "0.005"}},
    )
    assert result["outcome"] == "modify"
    assert result["approved_quantity"] == "0.150"


def test_modify_with_several_failed_caps_passes_all_of_them():
    # Strategy budget left: 30,000 - 29,000 = 1,000 -> 0.02; notional cap -> 0.2.
    result = decide(proposal={"quantity": "0.5000"}, context={"strategy_exposure": "29000"})
    assert result["outcome"] == "modify"
    assert result["approved_quantity"] == "0.0200"
    again = decide(proposal={"quantity": result["approved_quantity"]}, context={"strategy_exposure": "29000"})
    assert again["outcome"] == "approve"


def test_the_modified_quantity_is_approved_when_proposed_again():
    given = inputs(proposal={"quantity": "3.3333", "limit_price": "65000", "reference_price": "65000"})
    result = evaluate(**given)
    assert result["outcome"] == "modify"
    given["proposal"]["quantity"] = result["approved_quantity"]
    assert evaluate(**given)["outcome"] == "approve"


@pytest.mark.parametrize(
    "other",
    [
        {"context": {"trading_enabled": False}},
        {"context": {"tripped_breakers": ["venue_errors"]}},
        {"proposal": {"confidence": "0.10"}},
        {"proposal": {"expected_slippage_bps": "100"}},
        {"proposal": {"limit_price": "60000", "reference_price": "50000"}},
        {"context": {"proposals_last_minute": 60}},
        {"context": {"open_positions": 10}},
        {"context": {"instrument": {"enabled": False, "min_quantity": "0.0001", "quantity_step": "0.0001"}}},
    ],
    ids=["halted", "breaker", "confidence", "slippage", "collar", "rate", "positions", "instrument"],
)
def test_an_oversized_order_that_also_fails_another_rule_is_blocked_not_modified(other):
    proposal = {"quantity": "1.0000", **other.get("proposal", {})}
    result = decide(proposal=proposal, context=other.get("context"))
    assert result["outcome"] == "block"
    assert result["approved_quantity"] is None
    assert not check(result, "max_order_notional")["passed"]


def test_it_blocks_when_the_rounded_quantity_is_below_the_minimum_quantity():
    # Cap allows 0.0099..; min quantity 0.01: nothing sensible is left.
    result = decide(
        proposal={"quantity": "0.0200"},
        context={"instrument": {"enabled": True, "min_quantity": "0.0100", "quantity_step": "0.0001"}},
        rules={"max_order_notional": "499.99"},
    )
    assert failed(result) == ["max_order_notional"]
    assert result["outcome"] == "block"
    assert result["approved_quantity"] is None


def test_it_modifies_when_the_rounded_quantity_is_exactly_the_minimum_quantity():
    result = decide(
        proposal={"quantity": "0.0200"},
        context={"instrument": {"enabled": True, "min_quantity": "0.0100", "quantity_step": "0.0001"}},
        rules={"max_order_notional": "500"},
    )
    assert result["outcome"] == "modify"
    assert result["approved_quantity"] == "0.0100"


def test_it_blocks_when_the_cap_rounds_down_to_zero():
    result = decide(proposal={"quantity": "0.0100"}, rules={"max_order_notional": "4.99"})
    assert result["outcome"] == "block"


# --- closes (full mode) -------------------------------------------------------------

# 0.15 BTC long: closing all of it (7,500 notional) stays inside the order notional cap.
OPEN_LONG = {"position_quantity": "0.15", "closable_quantity": "0.15", "has_open_position": True, "open_positions": 1}


def test_in_full_mode_a_close_within_the_closable_quantity_is_approved():
    result = decide(proposal={"intent": "close", "side": "sell", "quantity": "0.1500"}, context=OPEN_LONG, rules={"mode": "full"})
    assert result["outcome"] == "approve"
    assert check(result, "exits_enabled")["passed"]
    assert check(result, "max_position")["detail"] == "close of 0.1500 <= open quantity 0.15"


def test_in_full_mode_a_close_larger_than_the_closable_quantity_is_blocked_never_modified():
    result = decide(proposal={"intent": "close", "side": "sell", "quantity": "0.1501"}, context=OPEN_LONG, rules={"mode": "full"})
    assert_only_failure(result, "max_position")
    assert result["approved_quantity"] is None
    assert check(result, "max_position")["detail"] == "close of 0.1501 > open quantity 0.15"


def test_in_full_mode_a_close_that_does_not_reduce_the_position_is_blocked():
    result = decide(proposal={"intent": "close", "side": "buy", "quantity": "0.1000"}, context=OPEN_LONG, rules={"mode": "full"})
    assert_only_failure(result, "max_position")
    assert "does not reduce" in check(result, "max_position")["detail"]


def test_in_full_mode_a_close_with_no_position_is_blocked():
    result = decide(proposal={"intent": "close", "side": "sell"}, rules={"mode": "full"})
    assert result["outcome"] == "block"
    assert failed(result) == ["max_position"]


def test_a_close_releases_exposure_so_the_caps_pass_even_when_full():
    result = decide(
        proposal={"intent": "close", "side": "sell", "quantity": "0.1000"},
        context={**OPEN_LONG, "asset_exposure": "999999", "strategy_exposure": "999999", "gross_exposure": "999999"},
        rules={"mode": "full"},
    )
    assert result["outcome"] == "approve"


def test_decimal_strings_in_any_exact_form_give_the_same_verdict():
    plain = decide(proposal={"quantity": "0.2000"})
    sci = decide(proposal={"quantity": "2000E-4", "limit_price": "5E+4", "reference_price": "50000.000"})
    assert plain["outcome"] == sci["outcome"] == "approve"
    assert Decimal(sci["approved_quantity"]) == Decimal("0.2")


def test_a_limit_just_outside_the_collar_never_reads_as_equal_to_it():
    # 65,650.01 is 100.0015 bps above 65,000: it fails, and the detail must say more than 100.
    result = evaluate(**inputs(proposal={"limit_price": "65650.01", "reference_price": "65000"}))
    collar = next(c for c in result["checks"] if c["rule"] == "price_collar")
    assert collar["passed"] is False
    assert "is 100.01 bps from reference" in collar["detail"]


# --- the compiled ruleset ---------------------------------------------------------


def test_a_ruleset_changed_in_place_under_the_same_version_decides_with_its_new_limits():
    given = inputs()
    assert evaluate(**given)["outcome"] == "approve"
    given["rules"]["min_confidence"] = "0.90"  # a draft edited, same version number
    result = evaluate(**given)
    assert_only_failure(result, "min_confidence")
    assert check(result, "min_confidence")["detail"] == "confidence 0.80 < minimum 0.90"


def test_a_nested_limit_changed_in_place_is_seen_too():
    given = inputs()
    evaluate(**given)
    given["rules"]["assets"]["BTCUSDT"]["max_position_quantity"] = "0.005"
    result = evaluate(**given)
    assert_only_failure(result, "max_position", outcome="modify")
    assert check(result, "max_position")["detail"] == "position after order 0.0100 > maximum 0.005"


def test_two_rulesets_sharing_a_version_number_each_decide_with_their_own_limits():
    tight, loose = inputs(rules={"max_order_notional": "400"}), inputs(rules={"max_order_notional": "600"})
    for _ in range(3):
        assert evaluate(**tight)["outcome"] == "modify"
        assert evaluate(**loose)["outcome"] == "approve"


def test_the_engine_keeps_a_bounded_number_of_compiled_rulesets():
    for version in range(1, engine.RULESETS_KEPT * 3):
        evaluate(**inputs(rules={"version": version}))
    assert len(engine._compiled) <= engine.RULESETS_KEPT


def test_a_malformed_limit_that_a_decision_never_reaches_does_not_fail_it():
    # A market order never reads the collar; a limit order does, every time.
    rules = {"max_price_deviation_bps": "wide"}
    market = {"order_type": "market", "limit_price": None}
    assert decide(proposal=market, rules=rules)["outcome"] == "approve"
    for _ in range(2):
        with pytest.raises(decimal.InvalidOperation):
            decide(rules=rules)
    assert decide(proposal=market, rules=rules)["outcome"] == "approve"


@pytest.mark.parametrize("proposal", [{"limit_price": "0"}, {"limit_price": "0", "intent": "close", "side": "sell"}])
def test_a_zero_price_is_not_decided_at_all(proposal):
    with pytest.raises(decimal.DivisionByZero):
        decide(proposal=proposal, context=OPEN_LONG, rules={"mode": "full"})


def test_the_engine_leaves_the_callers_decimal_context_as_it_was():
    outer = decimal.getcontext()
    prec = outer.prec
    decide(proposal={"quantity": "1.0000"})  # a modify: every rule and the re-check
    with pytest.raises(decimal.DivisionByZero):
        decide(proposal={"limit_price": "0"})
    assert decimal.getcontext() is outer
    assert outer.prec == prec
