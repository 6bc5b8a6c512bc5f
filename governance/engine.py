"""The rule engine: a pure function from (proposal, context, rules) to a decision.

No Django, no clock, no randomness, no I/O. Every input is plain JSON data (decimals
as strings, times as ISO-8601 strings) so it can be stored with the decision and
replayed later to the same result. Arithmetic runs in one fixed decimal context.

The rules are one table, RULES: a name, a small function that decides it, whether a
smaller quantity can satisfy it, and the MPC node that reviews it. The table's order
is the order of `checks` in every decision. A new rule is one function and one row.
"""

import decimal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation, decimal.DivisionByZero])
# The same context rounding down, for caps. Called through its methods, so a cap costs
# no context switch; the flags it collects are never read.
FLOOR = CONTEXT.copy()
FLOOR.rounding = decimal.ROUND_FLOOR
BPS = Decimal(10000)
ZERO = Decimal(0)
BUY, SELL = Decimal(1), Decimal(-1)
MICROS_PER_SECOND = Decimal(1_000_000)
CENT = Decimal("0.01")
NODES = ("execution", "risk", "portfolio")


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


class Facts(NamedTuple):
    """What several rules look at, parsed once per evaluation. The raw inputs ride
    along for what only one rule reads."""

    proposal: dict
    context: dict
    rules: dict
    quantity: Decimal
    price: Decimal  # notional_price(proposal)
    notional: Decimal
    is_close: bool
    sign: Decimal  # +1 for a buy, -1 for a sell
    position: Decimal  # signed, this strategy and instrument, reserved included
    asset_limits: dict | None  # rules["assets"] of this symbol, if any


# A check says (passed, detail); a quantity-bound one adds the largest quantity it
# allows (None for a close, which is never cut down).
Verdict = tuple[bool, str]
BoundVerdict = tuple[bool, str, Decimal | None]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # as it appears in `checks`
    check: Callable[[Facts], Verdict | BoundVerdict]  # a BoundVerdict exactly when quantity_bound
    # A smaller quantity can satisfy it: only these may lead to `modify`.
    quantity_bound: bool
    reviewer: str  # the MPC node that reviews it

    def __post_init__(self):
        if self.reviewer not in NODES:
            raise ValueError(f"rule {self.name}: unknown reviewer {self.reviewer!r}")


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
        quantity = d(proposal["quantity"])
        price = notional_price(proposal)
        facts = Facts(
            proposal=proposal,
            context=context,
            rules=rules,
            quantity=quantity,
            price=price,
            notional=quantity * price,
            is_close=proposal.get("intent", "open") == "close",
            sign=BUY if proposal["side"] == "buy" else SELL,
            position=d(context["position_quantity"]),
            asset_limits=rules["assets"].get(proposal["symbol"]),
        )
        checks, failed, caps = _apply(facts)
        if not failed:
            return {"outcome": "approve", "approved_quantity": proposal["quantity"], "checks": checks}
        smaller = _smaller_quantity(facts, failed, caps)
        if smaller is not None:
            return {"outcome": "modify", "approved_quantity": fmt(smaller), "checks": checks}
        return {"outcome": "block", "approved_quantity": None, "checks": checks}


def _apply(facts: Facts) -> tuple[list, list, list]:
    """Every rule in table order: the checks, the rules that failed, the quantity-bound caps."""
    checks, failed, caps = [], [], []
    for rule in RULES:
        if rule.quantity_bound:
            passed, detail, largest = rule.check(facts)
            caps.append(largest)
        else:
            passed, detail = rule.check(facts)
        checks.append({"rule": rule.name, "passed": passed, "detail": detail})
        if not passed:
            failed.append(rule)
    return checks, failed, caps


def _smaller_quantity(facts: Facts, failed: list, caps: list) -> Decimal | None:
    """The largest quantity, below the one asked for, that passes every check; None if there is none."""
    # A close larger than the position is refused outright, never cut down.
    if facts.is_close or not all(rule.quantity_bound for rule in failed):
        return None
    instrument = facts.context["instrument"]
    largest = _round_down(min(caps), d(instrument["quantity_step"]))
    if not (d(instrument["min_quantity"]) <= largest < facts.quantity and largest > 0):
        return None
    # The caps are upper bounds; max_position also has a lower one (a buy must not
    # leave a short beyond the limit), so a cut-down quantity is only offered when it
    # really passes every check, and only ever downwards.
    _, still_failed, _ = _apply(facts._replace(quantity=largest, notional=largest * facts.price))
    return None if still_failed else largest


# --- the rules, in table order ------------------------------------------------------


def _trading_enabled(facts: Facts) -> Verdict:
    if facts.context["trading_enabled"]:
        return True, "trading is enabled"
    return False, f"trading is halted: {facts.context.get('trading_reason') or 'no reason given'}"


def _circuit_breaker(facts: Facts) -> Verdict:
    tripped = sorted(facts.context["tripped_breakers"])
    if tripped:
        return False, "tripped: " + ", ".join(tripped)
    return True, "no circuit breaker tripped"


def _exits_enabled(facts: Facts) -> Verdict:
    if not facts.is_close:
        return True, "opening order; exits not involved"
    mode = facts.rules["mode"]
    if mode == "alpha":
        return False, "exits are disabled in ALPHA mode"
    return True, f"exits are enabled in {mode} mode"


def _instrument_enabled(facts: Facts) -> Verdict:
    symbol = facts.proposal["symbol"]
    if facts.context["instrument"]["enabled"]:
        return True, f"{symbol} is enabled"
    return False, f"{symbol} is disabled"


def _min_confidence(facts: Facts) -> Verdict:
    confidence, minimum = d(facts.proposal["confidence"]), d(facts.rules["min_confidence"])
    ok = confidence >= minimum
    return ok, f"confidence {fmt(confidence)} {'>=' if ok else '<'} minimum {fmt(minimum)}"


def _signal_age(facts: Facts) -> Verdict:
    age = _seconds_between(facts.proposal["signal_time"], facts.proposal["received_at"])
    maximum = d(facts.rules["max_signal_age_seconds"])
    ok = age <= maximum
    return ok, f"signal age {fmt(age)}s {'<=' if ok else '>'} maximum {fmt(maximum)}s"


def _slippage(facts: Facts) -> Verdict:
    slippage, maximum = d(facts.proposal["expected_slippage_bps"]), d(facts.rules["max_slippage_bps"])
    ok = slippage <= maximum
    return ok, f"expected slippage {fmt(slippage)} bps {'<=' if ok else '>'} maximum {fmt(maximum)} bps"


def _price_collar(facts: Facts) -> Verdict:
    if facts.proposal["order_type"] != "limit":
        return True, "market order; priced at reference"
    maximum = d(facts.rules["max_price_deviation_bps"])
    reference = d(facts.proposal["reference_price"])
    deviation = abs(facts.price - reference) / reference * BPS
    ok = deviation <= maximum
    # Rounded up, so a deviation just over the collar never reads as equal to it.
    shown = deviation.quantize(CENT, rounding=decimal.ROUND_CEILING)
    return ok, (
        f"limit {fmt(facts.price)} is {fmt(shown)} bps from reference {fmt(reference)}; "
        f"{'within' if ok else 'outside'} collar {fmt(maximum)} bps"
    )


def _max_order_notional(facts: Facts) -> BoundVerdict:
    maximum = d(facts.rules["max_order_notional"])
    ok = facts.notional <= maximum
    detail = f"order notional {fmt(facts.notional)} {'<=' if ok else '>'} maximum {fmt(maximum)}"
    return ok, detail, _floor_div(maximum, facts.price)


def _max_position(facts: Facts) -> BoundVerdict:
    if facts.is_close:
        return _close_within_position(facts)
    limits = facts.asset_limits
    maximum = d(limits["max_position_quantity"]) if limits else ZERO
    projected = abs(facts.position + facts.sign * facts.quantity)
    ok = projected <= maximum
    detail = f"position after order {fmt(projected)} {'<=' if ok else '>'} maximum {fmt(maximum)}"
    if not limits:
        detail += f" (no limit configured for {facts.proposal['symbol']})"
    return ok, detail, maximum - facts.sign * facts.position


def _close_within_position(facts: Facts) -> BoundVerdict:
    """A close must reduce an open position, by no more than what is left to close."""
    closable = d(facts.context["closable_quantity"])
    if not (facts.position != 0 and facts.sign * facts.position < 0):
        return False, f"close {facts.proposal['side']} does not reduce the open position {fmt(facts.position)}", None
    ok = facts.quantity <= closable
    return ok, f"close of {fmt(facts.quantity)} {'<=' if ok else '>'} open quantity {fmt(closable)}", None


# A close only lowers exposure: it passes every exposure cap.
RELEASES_EXPOSURE = (True, "a close releases exposure", None)


def _asset_exposure(facts: Facts) -> BoundVerdict:
    if facts.is_close:
        return RELEASES_EXPOSURE
    limits = facts.asset_limits
    maximum = d(limits["max_exposure"]) if limits else ZERO
    return _exposure(facts, f"{facts.proposal['symbol']} exposure", d(facts.context["asset_exposure"]), maximum)


def _strategy_budget(facts: Facts) -> BoundVerdict:
    if facts.is_close:
        return RELEASES_EXPOSURE
    strategy = facts.proposal["strategy"]
    budget = facts.rules["strategy_budgets"].get(strategy, facts.rules["default_strategy_budget"])
    return _exposure(facts, f"strategy {strategy} exposure", d(facts.context["strategy_exposure"]), d(budget))


def _portfolio_exposure(facts: Facts) -> BoundVerdict:
    if facts.is_close:
        return RELEASES_EXPOSURE
    return _exposure(facts, "gross exposure", d(facts.context["gross_exposure"]), d(facts.rules["max_gross_exposure"]))


def _exposure(facts: Facts, label: str, current: Decimal, maximum: Decimal) -> BoundVerdict:
    after = current + facts.notional
    ok = after <= maximum
    detail = f"{label} after order {fmt(after)} {'<=' if ok else '>'} maximum {fmt(maximum)}"
    return ok, detail, _floor_div(maximum - current, facts.price)


def _max_open_positions(facts: Facts) -> Verdict:
    count, maximum = facts.context["open_positions"], facts.rules["max_open_positions"]
    if facts.is_close or facts.context["has_open_position"]:
        return True, f"adds no new position ({count} open, maximum {maximum})"
    ok = count < maximum
    return ok, f"{count} open positions; a new one {'fits' if ok else 'exceeds'} maximum {maximum}"


def _order_rate(facts: Facts) -> Verdict:
    recent, maximum = facts.context["proposals_last_minute"], facts.rules["max_proposals_per_minute"]
    return recent < maximum, f"{recent} proposals from this strategy in the last minute; maximum {maximum}"


RULES = (
    #    name                  check                 quantity-bound  reviewer
    Rule("trading_enabled",    _trading_enabled,     False,          "execution"),
    Rule("circuit_breaker",    _circuit_breaker,     False,          "execution"),
    Rule("exits_enabled",      _exits_enabled,       False,          "risk"),
    Rule("instrument_enabled", _instrument_enabled,  False,          "execution"),
    Rule("min_confidence",     _min_confidence,      False,          "risk"),
    Rule("signal_age",         _signal_age,          False,          "risk"),
    Rule("slippage",           _slippage,            False,          "risk"),
    Rule("price_collar",       _price_collar,        False,          "risk"),
    Rule("max_order_notional", _max_order_notional,  True,           "risk"),
    Rule("max_position",       _max_position,        True,           "portfolio"),
    Rule("asset_exposure",     _asset_exposure,      True,           "portfolio"),
    Rule("strategy_budget",    _strategy_budget,     True,           "portfolio"),
    Rule("portfolio_exposure", _portfolio_exposure,  True,           "portfolio"),
    Rule("max_open_positions", _max_open_positions,  False,          "portfolio"),
    Rule("order_rate",         _order_rate,          False,          "risk"),
)

CHECK_ORDER = tuple(rule.name for rule in RULES)
# Checks that a smaller quantity can satisfy: only these may lead to `modify`.
QUANTITY_BOUND = tuple(rule.name for rule in RULES if rule.quantity_bound)


def rules_reviewed_by(node: str) -> tuple[str, ...]:
    """The names of the rules `node` reviews, in table order."""
    if node not in NODES:
        # A misspelt node must not silently review nothing.
        raise ValueError(f"unknown node {node!r}; nodes are {', '.join(NODES)}")
    return tuple(rule.name for rule in RULES if rule.reviewer == node)


# --- arithmetic -----------------------------------------------------------------------


def _floor_div(numerator: Decimal, denominator: Decimal) -> Decimal:
    """A quotient never rounded up: a limit divided by a price must not allow more than it says."""
    return FLOOR.divide(numerator, denominator)


def _round_down(quantity: Decimal, step: Decimal) -> Decimal:
    if quantity <= 0:
        return ZERO
    # Integer division is exact (a rounded quotient could land on the next step up).
    return ((quantity // step) * step).quantize(step)


def _seconds_between(start: str, end: str) -> Decimal:
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros) / MICROS_PER_SECOND
