"""Properties of the pure rule engine, over generated inputs (hypothesis).

Every decimal is built from integers (mantissa x 10^-scale), never from floats, so
the generated inputs are exactly what an agent or the database could hand over.
"""

import copy
import decimal
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance import engine
from governance.engine import CHECK_ORDER, QUANTITY_BOUND, evaluate, fmt

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
BREAKERS = ["venue_errors", "venue_latency", "reconciliation_mismatch"]


def dec(mantissa: int, scale: int) -> Decimal:
    return Decimal(mantissa).scaleb(-scale)


def text(value: Decimal) -> str:
    return format(value, "f")


@st.composite
def engine_inputs(draw, *, sound=False):
    """Engine inputs whose caps are drawn relative to the order's own notional, so
    approve, modify and block all come up often.

    sound=True: every check that is not quantity-bound passes, so the caps alone
    decide. Otherwise each of those checks fails now and then.
    """

    def breaks():
        return False if sound else draw(st.integers(0, 7)) == 0

    step = dec(draw(st.sampled_from([1, 2, 5])), draw(st.integers(0, 4)))
    min_quantity = step * draw(st.integers(1, 5))
    steps = draw(st.integers(1, 20_000))
    quantity = step * steps
    reference = dec(draw(st.integers(1, 10_000_000)), draw(st.integers(0, 2)))
    collar_bps = draw(st.integers(0, 500))
    order_type = draw(st.sampled_from(["limit", "market"]))
    if order_type == "limit":
        deviation = draw(st.integers(-collar_bps, collar_bps)) if not breaks() else draw(st.integers(-3000, 3000))
        price = max((reference * (10000 + deviation) / 10000).quantize(Decimal("0.01")), Decimal("0.01"))
        if sound:
            price = reference
        limit_price = text(price)
    else:
        price, limit_price = reference, None
    notional = quantity * price

    def share(of, high):
        """A decimal between 0 and high% of `of`."""
        return of * draw(st.integers(0, high)) / 100

    def cap(current):
        """A limit that is tight (may bind) one time in three, loose otherwise."""
        if draw(st.integers(0, 2)) == 0:
            return current + share(notional, 150)
        return current + notional * draw(st.integers(1, 5))

    min_confidence = draw(st.integers(1, 100))
    confidence = draw(st.integers(0, min_confidence - 1)) if breaks() else draw(st.integers(min_confidence, 100))
    max_slippage = draw(st.integers(0, 99))
    slippage = draw(st.integers(max_slippage + 1, 150)) if breaks() else draw(st.integers(0, max_slippage))
    max_age = draw(st.integers(0, 120))
    if breaks():
        age_micros = draw(st.integers(max_age * 1_000_000 + 1, 200_000_000))
    else:
        age_micros = draw(st.integers(-5_000_000, max_age * 1_000_000))
    received_at = BASE + timedelta(microseconds=draw(st.integers(0, 10**9)))
    signal_time = (received_at - timedelta(microseconds=age_micros)).astimezone(
        timezone(timedelta(hours=draw(st.integers(-12, 12))))
    )
    max_open = draw(st.integers(1, 20))
    open_positions = draw(st.integers(max_open, max_open + 2)) if breaks() else draw(st.integers(0, max_open - 1))
    max_rate = draw(st.integers(1, 100))
    recent = draw(st.integers(max_rate, max_rate + 2)) if breaks() else draw(st.integers(0, max_rate - 1))

    position = step * draw(st.integers(-3 * steps, 3 * steps))
    if draw(st.integers(0, 2)) == 0:
        max_position = step * draw(st.integers(0, 3 * steps))
    else:
        max_position = abs(position) + quantity * draw(st.integers(1, 3))
    asset_exposure, strategy_exposure, gross_exposure = (share(notional, 500) for _ in range(3))
    symbol = "BTCUSDT"
    assets = {}
    if sound or not breaks():
        assets[symbol] = {"max_position_quantity": text(max_position), "max_exposure": text(cap(asset_exposure))}
    budget = text(cap(strategy_exposure))
    strategy_budgets = {"demo": budget} if draw(st.booleans()) else {}

    proposal = {
        "id": "00000000-0000-0000-0000-000000000001",
        "strategy": "demo",
        "symbol": symbol,
        "side": draw(st.sampled_from(["buy", "sell"])),
        "quantity": text(quantity),
        "order_type": order_type,
        "limit_price": limit_price,
        "reference_price": text(reference),
        "expected_slippage_bps": str(slippage),
        "confidence": text(dec(confidence, 2)),
        "signal_time": signal_time.isoformat(),
        "received_at": received_at.isoformat(),
        "intent": "close" if breaks() else "open",
    }
    context = {
        "trading_enabled": not breaks(),
        "trading_reason": "generated",
        "tripped_breakers": BREAKERS[: draw(st.integers(1, 2))] if breaks() else [],
        "instrument": {"enabled": not breaks(), "min_quantity": text(min_quantity), "quantity_step": text(step)},
        "position_quantity": text(position),
        "closable_quantity": text(share(abs(position), 100)),
        "asset_exposure": text(asset_exposure),
        "strategy_exposure": text(strategy_exposure),
        "gross_exposure": text(gross_exposure),
        "open_positions": open_positions,
        "has_open_position": position != 0 or draw(st.booleans()),
        "proposals_last_minute": recent,
    }
    rules = {
        "version": draw(st.integers(1, 50)),
        "mode": draw(st.sampled_from(["alpha", "full"])),
        "min_confidence": text(dec(min_confidence, 2)),
        "max_signal_age_seconds": str(max_age),
        "max_slippage_bps": str(max_slippage),
        "max_price_deviation_bps": str(collar_bps),
        "max_order_notional": text(cap(Decimal(0))),
        "default_strategy_budget": text(share(notional, 800)) if strategy_budgets else budget,
        "max_gross_exposure": text(cap(gross_exposure)),
        "max_open_positions": max_open,
        "max_proposals_per_minute": max_rate,
        "quorum_required": 2,
        "vote_timeout_seconds": "10",
        "assets": assets,
        "strategy_budgets": strategy_budgets,
    }
    if draw(st.booleans()):
        # A ruleset with the post-ALPHA loss limits (every one published since they exist),
        # and a context with realized losses around them.
        loss = lambda: text(-dec(draw(st.integers(0, 30_000)), 0))  # noqa: E731
        rules.update(
            max_daily_loss_strategy=str(draw(st.integers(0, 20_000))),
            max_daily_loss_asset=str(draw(st.integers(0, 20_000))),
            max_daily_loss_portfolio=str(draw(st.integers(0, 20_000))),
            max_drawdown_strategy=str(draw(st.integers(0, 20_000))),
            max_drawdown_portfolio=str(draw(st.integers(0, 20_000))),
            loss_cooldown_losses=draw(st.integers(1, 5)),
            loss_cooldown_minutes=draw(st.integers(0, 120)),
        )
        context.update(
            realized_today={"strategy": loss(), "asset": loss(), "portfolio": loss()},
            drawdown={"strategy": loss(), "portfolio": loss()},
            loss_streak={"count": draw(st.integers(0, 6)), "ended_at": (received_at - timedelta(minutes=draw(st.integers(0, 180)))).isoformat()},
        )
    return {"proposal": proposal, "context": context, "rules": rules}


def with_quantity(given_inputs, quantity: Decimal):
    changed = copy.deepcopy(given_inputs)
    changed["proposal"]["quantity"] = text(quantity)
    return changed


def failed(result):
    return {c["rule"] for c in result["checks"] if not c["passed"]}


any_inputs = engine_inputs()
cap_bound_inputs = engine_inputs(sound=True)


@SETTINGS
@given(any_inputs)
def test_the_same_inputs_always_give_the_identical_decision(given_inputs):
    before = copy.deepcopy(given_inputs)
    first = evaluate(**given_inputs)
    assert given_inputs == before, "the engine changed its inputs"
    assert evaluate(**given_inputs) == first
    round_tripped = json.loads(json.dumps(given_inputs))
    assert json.dumps(evaluate(**round_tripped), sort_keys=True) == json.dumps(first, sort_keys=True)


@SETTINGS
@given(any_inputs)
def test_every_decision_has_all_its_checks_in_order_and_a_consistent_outcome(given_inputs):
    result = evaluate(**given_inputs)
    # Eighteen under a ruleset with the loss limits, the first fifteen under one published before them.
    expected = CHECK_ORDER if "max_daily_loss_portfolio" in given_inputs["rules"] else CHECK_ORDER[:15]
    assert [c["rule"] for c in result["checks"]] == list(expected)
    assert result["outcome"] in ("approve", "modify", "block")
    if result["outcome"] == "block":
        assert result["approved_quantity"] is None
        assert failed(result), "a block names at least one failed check"


@SETTINGS
@given(any_inputs | cap_bound_inputs)
def test_approve_means_every_check_passed_and_the_full_quantity(given_inputs):
    result = evaluate(**given_inputs)
    if result["outcome"] == "approve":
        assert all(c["passed"] for c in result["checks"])
        assert result["approved_quantity"] == given_inputs["proposal"]["quantity"]
    else:
        assert failed(result)


@SETTINGS
@given(cap_bound_inputs | any_inputs)
def test_a_modify_quantity_passes_every_check_and_is_the_largest_step_that_does(given_inputs):
    result = evaluate(**given_inputs)
    if result["outcome"] != "modify":
        return
    requested = Decimal(given_inputs["proposal"]["quantity"])
    approved = Decimal(result["approved_quantity"])
    instrument = given_inputs["context"]["instrument"]
    step, min_quantity = Decimal(instrument["quantity_step"]), Decimal(instrument["min_quantity"])

    assert failed(result) <= set(QUANTITY_BOUND)
    assert given_inputs["proposal"]["intent"] == "open"
    assert approved % step == 0
    assert min_quantity <= approved < requested

    again = evaluate(**with_quantity(given_inputs, approved))
    assert again["outcome"] == "approve"
    assert all(c["passed"] for c in again["checks"])
    # Largest: one step more no longer passes.
    assert evaluate(**with_quantity(given_inputs, approved + step))["outcome"] != "approve"


@SETTINGS
@given(cap_bound_inputs)
def test_a_block_on_caps_alone_means_no_smaller_valid_quantity_would_pass(given_inputs):
    result = evaluate(**given_inputs)
    if result["outcome"] != "block" or not failed(result) <= set(QUANTITY_BOUND):
        return
    requested = Decimal(given_inputs["proposal"]["quantity"])
    instrument = given_inputs["context"]["instrument"]
    step, min_quantity = Decimal(instrument["quantity_step"]), Decimal(instrument["min_quantity"])
    for smaller in (min_quantity, requested - step):
        if min_quantity <= smaller < requested:
            assert evaluate(**with_quantity(given_inputs, smaller))["outcome"] != "approve"


@SETTINGS
@given(any_inputs)
def test_a_kept_compiled_ruleset_decides_exactly_as_a_fresh_one(given_inputs):
    engine._compiled.clear()
    fresh = evaluate(**given_inputs)
    kept = evaluate(**copy.deepcopy(given_inputs))  # equal params, another dict: a cache hit
    assert json.dumps(kept, sort_keys=True) == json.dumps(fresh, sort_keys=True)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(-(10**60), 10**60) | st.sampled_from([0, 1, -1, 10, 100]),
    st.integers(-60, 12),
    st.sampled_from([0, 1]),
)
def test_fmt_writes_a_decimal_as_format_f_does(mantissa, exponent, capitals):
    """fmt takes a shortcut through str(); it must give the same text, exponent or not."""
    value = Decimal(mantissa).scaleb(exponent, context=decimal.Context(prec=100))
    with decimal.localcontext(decimal.Context(capitals=capitals)):
        assert fmt(value) == format(value, "f")
        assert fmt(-value) == format(-value, "f")


def test_the_generators_reach_every_outcome():
    """Guard against a vacuous property run: both generators produce all three outcomes."""
    for inputs_strategy in (cap_bound_inputs, any_inputs):
        seen = set()

        @settings(max_examples=150, deadline=None, database=None, derandomize=True)
        @given(inputs_strategy)
        def collect(given_inputs):
            seen.add(evaluate(**given_inputs)["outcome"])

        collect()
        assert seen == {"approve", "modify", "block"}
