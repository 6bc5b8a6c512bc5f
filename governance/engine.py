"""The rule engine: a pure function from (proposal, context, rules) to a decision.

No Django, no clock, no randomness, no I/O. Every input is plain JSON data (decimals
as strings, times as ISO-8601 strings) so it can be stored with the decision and
replayed later to the same result. Arithmetic runs in one fixed decimal context.
"""

import decimal
from datetime import datetime
from decimal import Decimal

CHECK_ORDER = (
    "trading_enabled",
    "circuit_breaker",
    "exits_enabled",
    "instrument_enabled",
    "min_confidence",
    "signal_age",
    "slippage",
    "price_collar",
    "max_order_notional",
    "max_position",
    "asset_exposure",
    "strategy_budget",
    "portfolio_exposure",
    "max_open_positions",
    "order_rate",
)

# Checks that a smaller quantity can satisfy: only these may lead to `modify`.
QUANTITY_BOUND = (
    "max_order_notional",
    "max_position",
    "asset_exposure",
    "strategy_budget",
    "portfolio_exposure",
)

CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation, decimal.DivisionByZero])
BPS = Decimal(10000)


def d(value) -> Decimal:
    return Decimal(str(value))


def fmt(value: Decimal) -> str:
    """A decimal for humans: no exponent, no trailing zeros beyond the value's own.

    (chronosx.canonical.decimal_text does the same; the engine imports nothing of the project.)"""
    return format(value, "f")


def notional_price(proposal: dict) -> Decimal:
    """The price exposure is counted at: the limit price, or the reference price for market orders."""
    if proposal["order_type"] == "limit":
        return d(proposal["limit_price"])
    return d(proposal["reference_price"])


def evaluate(*, proposal: dict, context: dict, rules: dict) -> dict:
    """Decide one proposal. Returns {"outcome", "approved_quantity", "checks"}.

    proposal: symbol, side, quantity, order_type, limit_price, reference_price,
      expected_slippage_bps, confidence, signal_time, received_at, intent.
    context: trading_enabled, trading_reason, tripped_breakers, instrument
      {enabled, min_quantity, quantity_step}, position_quantity (signed, this
      strategy and instrument, reserved included), closable_quantity,
      asset_exposure, strategy_exposure, gross_exposure, open_positions,
      has_open_position, proposals_last_minute.
    rules: a published ruleset's params.
    """
    with decimal.localcontext(CONTEXT):
        return _evaluate(proposal, context, rules)


def _evaluate(proposal, context, rules, *, may_modify=True):
    quantity = d(proposal["quantity"])
    price = notional_price(proposal)
    is_close = proposal.get("intent", "open") == "close"
    instrument = context["instrument"]
    checks = {}
    # For each quantity-bound check: the largest quantity it allows.
    max_quantities = {}

    def check(rule, passed, detail):
        checks[rule] = {"rule": rule, "passed": bool(passed), "detail": detail}

    enabled = context["trading_enabled"]
    check(
        "trading_enabled",
        enabled,
        "trading is enabled" if enabled else f"trading is halted: {context.get('trading_reason') or 'no reason given'}",
    )

    tripped = sorted(context["tripped_breakers"])
    check(
        "circuit_breaker",
        not tripped,
        "no circuit breaker tripped" if not tripped else "tripped: " + ", ".join(tripped),
    )

    if not is_close:
        check("exits_enabled", True, "opening order; exits not involved")
    elif rules["mode"] == "alpha":
        check("exits_enabled", False, "exits are disabled in ALPHA mode")
    else:
        check("exits_enabled", True, f"exits are enabled in {rules['mode']} mode")

    check(
        "instrument_enabled",
        instrument["enabled"],
        f"{proposal['symbol']} is enabled" if instrument["enabled"] else f"{proposal['symbol']} is disabled",
    )

    confidence, min_confidence = d(proposal["confidence"]), d(rules["min_confidence"])
    ok = confidence >= min_confidence
    check("min_confidence", ok, f"confidence {fmt(confidence)} {'>=' if ok else '<'} minimum {fmt(min_confidence)}")

    age = _seconds_between(proposal["signal_time"], proposal["received_at"])
    max_age = d(rules["max_signal_age_seconds"])
    ok = age <= max_age
    check("signal_age", ok, f"signal age {fmt(age)}s {'<=' if ok else '>'} maximum {fmt(max_age)}s")

    slippage, max_slippage = d(proposal["expected_slippage_bps"]), d(rules["max_slippage_bps"])
    ok = slippage <= max_slippage
    check("slippage", ok, f"expected slippage {fmt(slippage)} bps {'<=' if ok else '>'} maximum {fmt(max_slippage)} bps")

    max_deviation = d(rules["max_price_deviation_bps"])
    if proposal["order_type"] == "limit":
        reference = d(proposal["reference_price"])
        deviation = abs(price - reference) / reference * BPS
        ok = deviation <= max_deviation
        # Rounded up, so a deviation just over the collar never reads as equal to it.
        shown = deviation.quantize(Decimal("0.01"), rounding=decimal.ROUND_CEILING)
        check(
            "price_collar",
            ok,
            f"limit {fmt(price)} is {fmt(shown)} bps from reference {fmt(reference)}; "
            f"{'within' if ok else 'outside'} collar {fmt(max_deviation)} bps",
        )
    else:
        check("price_collar", True, "market order; priced at reference")

    notional = quantity * price
    max_notional = d(rules["max_order_notional"])
    max_quantities["max_order_notional"] = _floor_div(max_notional, price)
    ok = notional <= max_notional
    check("max_order_notional", ok, f"order notional {fmt(notional)} {'<=' if ok else '>'} maximum {fmt(max_notional)}")

    asset_rules = rules["assets"].get(proposal["symbol"])
    sign = Decimal(1) if proposal["side"] == "buy" else Decimal(-1)
    position = d(context["position_quantity"])
    if is_close:
        _close_checks(check, proposal, context, quantity, sign)
    else:
        max_position = d(asset_rules["max_position_quantity"]) if asset_rules else Decimal(0)
        projected = abs(position + sign * quantity)
        max_quantities["max_position"] = max_position - sign * position
        ok = projected <= max_position
        check(
            "max_position",
            ok,
            f"position after order {fmt(projected)} {'<=' if ok else '>'} maximum {fmt(max_position)}"
            + ("" if asset_rules else f" (no limit configured for {proposal['symbol']})"),
        )

        max_asset = d(asset_rules["max_exposure"]) if asset_rules else Decimal(0)
        _exposure_check(check, max_quantities, "asset_exposure", f"{proposal['symbol']} exposure",
                        d(context["asset_exposure"]), notional, max_asset, price)

        budget = rules["strategy_budgets"].get(proposal["strategy"], rules["default_strategy_budget"])
        _exposure_check(check, max_quantities, "strategy_budget", f"strategy {proposal['strategy']} exposure",
                        d(context["strategy_exposure"]), notional, d(budget), price)

        _exposure_check(check, max_quantities, "portfolio_exposure", "gross exposure",
                        d(context["gross_exposure"]), notional, d(rules["max_gross_exposure"]), price)

    open_positions, max_open = context["open_positions"], rules["max_open_positions"]
    if is_close or context["has_open_position"]:
        check("max_open_positions", True, f"adds no new position ({open_positions} open, maximum {max_open})")
    else:
        ok = open_positions < max_open
        check("max_open_positions", ok, f"{open_positions} open positions; a new one {'fits' if ok else 'exceeds'} maximum {max_open}")

    recent, max_rate = context["proposals_last_minute"], rules["max_proposals_per_minute"]
    ok = recent < max_rate
    check("order_rate", ok, f"{recent} proposals from this strategy in the last minute; maximum {max_rate}")

    ordered = [checks[rule] for rule in CHECK_ORDER]
    failed = {c["rule"] for c in ordered if not c["passed"]}
    if not failed:
        return {"outcome": "approve", "approved_quantity": proposal["quantity"], "checks": ordered}
    # A close larger than the position is refused outright, never cut down.
    if may_modify and not is_close and failed <= set(QUANTITY_BOUND):
        largest = _round_down(min(max_quantities.values()), d(instrument["quantity_step"]))
        # The caps above are upper bounds; max_position also has a lower one (a buy
        # must not leave a short beyond the limit), so a cut-down quantity is only
        # offered when it really passes every check, and only ever downwards.
        if (
            d(instrument["min_quantity"]) <= largest < quantity
            and largest > 0
            and _evaluate({**proposal, "quantity": fmt(largest)}, context, rules, may_modify=False)["outcome"] == "approve"
        ):
            return {"outcome": "modify", "approved_quantity": fmt(largest), "checks": ordered}
    return {"outcome": "block", "approved_quantity": None, "checks": ordered}


def _close_checks(check, proposal, context, quantity, sign):
    """A close must reduce an open position, by no more than what is left to close."""
    position = d(context["position_quantity"])
    closable = d(context["closable_quantity"])
    reduces = position != 0 and (sign * position) < 0
    ok = reduces and quantity <= closable
    if not reduces:
        detail = f"close {proposal['side']} does not reduce the open position {fmt(position)}"
    else:
        detail = f"close of {fmt(quantity)} {'<=' if ok else '>'} open quantity {fmt(closable)}"
    check("max_position", ok, detail)
    for rule in ("asset_exposure", "strategy_budget", "portfolio_exposure"):
        check(rule, True, "a close releases exposure")


def _exposure_check(check, max_quantities, rule, label, current, notional, limit, price):
    after = current + notional
    ok = after <= limit
    max_quantities[rule] = _floor_div(limit - current, price)
    check(rule, ok, f"{label} after order {fmt(after)} {'<=' if ok else '>'} maximum {fmt(limit)}")


def _floor_div(numerator: Decimal, denominator: Decimal) -> Decimal:
    """A quotient never rounded up: a limit divided by a price must not allow more than it says."""
    with decimal.localcontext() as ctx:
        ctx.rounding = decimal.ROUND_FLOOR
        return numerator / denominator


def _round_down(quantity: Decimal, step: Decimal) -> Decimal:
    if quantity <= 0:
        return Decimal(0)
    # Integer division is exact (a rounded quotient could land on the next step up).
    return ((quantity // step) * step).quantize(step)


def _seconds_between(start: str, end: str) -> Decimal:
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros) / Decimal(1_000_000)
