"""The rule engine: a pure function from (proposal, context, rules) to a decision.

No Django, no clock, no randomness, no I/O. Every input is plain JSON data (decimals
as strings, times as ISO-8601 strings) so it can be stored with the decision and
replayed later to the same result. Arithmetic runs in one fixed decimal context.

The rules are one table, RULES: a name, a small function that decides it, for a rule
that a smaller quantity can satisfy the largest quantity it allows, and the MPC node
that reviews it. The table's order is the order of `checks` in every decision. A new
rule is one function (two if quantity-bound) and one row.

What depends on the ruleset alone (its decimals parsed, with the text details show
them in) is worked out once per ruleset version and kept: see Ruleset and compiled().
"""

import copy
import decimal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import NamedTuple

CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation, decimal.DivisionByZero])
# The same context rounding down, for caps, and up, for the collar's shown deviation.
# Called through their methods, so a rounding costs no context switch; the flags they
# collect are never read.
FLOOR = CONTEXT.copy()
FLOOR.rounding = decimal.ROUND_FLOOR
CEILING = CONTEXT.copy()
CEILING.rounding = decimal.ROUND_CEILING
BPS = Decimal(10000)
ZERO = Decimal(0)
BUY, SELL = Decimal(1), Decimal(-1)
MICROS_PER_SECOND = Decimal(1_000_000)
MICROSECOND = timedelta(microseconds=1)
CENT = Decimal("0.01")
NODES = ("execution", "risk", "portfolio")


def d(value) -> Decimal:
    return Decimal(str(value))


def fmt(value: Decimal) -> str:
    """A decimal for humans: no exponent, no trailing zeros beyond the value's own.

    (chronosx.canonical.decimal_text does the same; the engine imports nothing of the project.)"""
    # str() gives the same text several times faster, unless it picks an exponent
    # (for a positive exponent, or a value below 1E-6).
    text = str(value)
    if "E" in text or "e" in text:
        return format(value, "f")
    return text


def notional_price(proposal: dict) -> Decimal:
    """The price exposure is counted at: the limit price, or the reference price for market orders."""
    if proposal["order_type"] == "limit":
        return d(proposal["limit_price"])
    return d(proposal["reference_price"])


# --- the ruleset, compiled ------------------------------------------------------------


class Limit(NamedTuple):
    """A limit of the ruleset, parsed, and its text as details show it."""

    value: Decimal
    text: str


def _limit(raw) -> Limit:
    value = d(raw)
    return Limit(value, fmt(value))


NO_LIMIT = _limit(0)  # for a symbol without limits: no position, no exposure


@dataclass(frozen=True, eq=False)
class Ruleset:
    """A ruleset's params compiled for the rules: each limit parsed once, with its text,
    and the limits of each asset and each strategy as they are first asked for.

    A limit is parsed on first use rather than up front, so that one a decision never
    reaches (the collar for a market order, the budgets for a close) fails, if it is
    malformed, exactly where it always has; a failed parse is not kept.
    """

    params: dict  # a copy of the params it was compiled from, never handed out
    _assets: dict = field(default_factory=dict)  # (symbol with limits, param), or a loss-limit param -> Limit
    _budgets: dict = field(default_factory=dict)  # strategy with its own budget, or None -> Limit

    @cached_property
    def min_confidence(self) -> Limit:
        return _limit(self.params["min_confidence"])

    @cached_property
    def max_signal_age(self) -> Limit:
        return _limit(self.params["max_signal_age_seconds"])

    @cached_property
    def max_slippage(self) -> Limit:
        return _limit(self.params["max_slippage_bps"])

    @cached_property
    def max_price_deviation(self) -> Limit:
        return _limit(self.params["max_price_deviation_bps"])

    @cached_property
    def max_order_notional(self) -> Limit:
        return _limit(self.params["max_order_notional"])

    @cached_property
    def max_gross_exposure(self) -> Limit:
        return _limit(self.params["max_gross_exposure"])

    def loss_limit(self, param: str) -> Limit:
        """A loss limit of the ruleset (a positive amount of quote currency)."""
        limit = self._assets.get(param)
        if limit is None:
            limit = self._assets[param] = _limit(self.params[param])
        return limit

    def asset_limit(self, symbol: str, param: str) -> Limit:
        """params["assets"][symbol][param]; no room at all for a symbol without limits."""
        key = (symbol, param)
        limit = self._assets.get(key)
        if limit is None:
            limits = self.params["assets"].get(symbol)
            if not limits:
                return NO_LIMIT  # not kept: only the symbols of the ruleset are
            limit = self._assets[key] = _limit(limits[param])
        return limit

    def strategy_budget(self, strategy: str) -> Limit:
        """The strategy's own budget, else the default one (both params must be there)."""
        budgets, default = self.params["strategy_budgets"], self.params["default_strategy_budget"]
        key = strategy if strategy in budgets else None  # kept per strategy of the ruleset, not per name asked
        limit = self._budgets.get(key)
        if limit is None:
            limit = self._budgets[key] = _limit(budgets.get(strategy, default))
        return limit


RULESETS_KEPT = 16
_compiled: dict = {}  # ruleset version -> Ruleset, oldest first


def compiled(rules: dict) -> Ruleset:
    """These params compiled, once per ruleset version.

    A published version's params never change, but the engine is also handed drafts
    (`ruleset impact`) and test inputs that share a number, or the same dict changed in
    place: a kept Ruleset is used only while its copy of the params equals the params
    given, and is compiled again otherwise. (Equal as Python compares: 10 == 10.0. Each
    ruleset field has one type, decimal text or integer, so params of one version never
    differ only that way.)
    """
    version = rules.get("version")
    ruleset = _compiled.get(version)
    if ruleset is None or ruleset.params != rules:
        ruleset = Ruleset(copy.deepcopy(rules))
        _compiled.pop(version, None)
        while len(_compiled) >= RULESETS_KEPT:
            _compiled.pop(next(iter(_compiled)), None)
        _compiled[version] = ruleset
    return ruleset


class Facts:
    """What several rules look at, parsed once per evaluation. The raw inputs ride
    along for what only one rule reads.

    A plain class with slots rather than a dataclass: it is built for every decision,
    and twice for a modify, so its construction is kept to the assignments."""

    __slots__ = (
        "proposal", "context", "rules", "ruleset", "quantity", "price", "notional", "is_close", "sign", "position",
        "asset_limits",
    )

    def __init__(self, proposal: dict, context: dict, rules: dict, ruleset: "Ruleset", quantity: Decimal, price: Decimal):
        self.proposal = proposal
        self.context = context
        self.rules = rules
        self.ruleset = ruleset  # rules, compiled
        self.quantity = quantity
        self.price = price  # notional_price(proposal)
        self.notional = quantity * price
        self.is_close = proposal.get("intent", "open") == "close"
        self.sign = BUY if proposal["side"] == "buy" else SELL  # +1 for a buy, -1 for a sell
        self.position = d(context["position_quantity"])  # signed, this strategy and instrument, reserved included
        self.asset_limits = rules["assets"].get(proposal["symbol"])  # rules["assets"] of this symbol, if any

    def with_quantity(self, quantity: Decimal) -> "Facts":
        """The same order for another quantity."""
        return Facts(self.proposal, self.context, self.rules, self.ruleset, quantity, self.price)


# A check says (passed, detail).
Verdict = tuple[bool, str]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # as it appears in `checks`
    check: Callable[[Facts], Verdict]
    # For a rule that a smaller quantity can satisfy (only these may lead to `modify`):
    # the largest quantity an opening order may have to pass it. Worked out only when
    # a decision may be a modify. A rule without one must not depend on the quantity.
    cap: Callable[[Facts], Decimal] | None
    reviewer: str  # the MPC node that reviews it

    def __post_init__(self):
        if self.reviewer not in NODES:
            raise ValueError(f"rule {self.name}: unknown reviewer {self.reviewer!r}")

    @property
    def quantity_bound(self) -> bool:
        return self.cap is not None


def evaluate(*, proposal: dict, context: dict, rules: dict) -> dict:
    """Decide one proposal. Returns {"outcome", "approved_quantity", "checks"}.

    proposal: symbol, side, quantity, order_type, limit_price, reference_price,
      expected_slippage_bps, confidence, signal_time, received_at, intent.
    context: trading_enabled, trading_reason, trading_state (enabled | reduce_only |
      halted; absent from old contexts, which trading_enabled alone decides),
      strategy_paused and instrument_paused (the pause reason, or None; absent from
      old contexts), tripped_breakers, instrument
      {enabled, min_quantity, quantity_step}, position_quantity (signed, this
      strategy and instrument, reserved included), closable_quantity,
      asset_exposure, strategy_exposure, gross_exposure, open_positions,
      has_open_position, proposals_last_minute; for the post-ALPHA checks (absent from
      old contexts, read as no realized PnL): realized_today {strategy, asset,
      portfolio}, drawdown {strategy, portfolio} (realized PnL since the high-water
      mark, <= 0), loss_streak {count, ended_at} (this strategy and instrument).
    rules: a published ruleset's params.
    """
    ruleset = compiled(rules)
    # All arithmetic in CONTEXT. It is made current as it is: decimal.localcontext()
    # would copy it, which costs as much as several checks. Its flags are never read.
    outer = decimal.getcontext()
    decimal.setcontext(CONTEXT)
    try:
        return _decide(proposal, context, rules, ruleset)
    finally:
        decimal.setcontext(outer)


def _decide(proposal: dict, context: dict, rules: dict, ruleset: Ruleset) -> dict:
    facts = Facts(proposal, context, rules, ruleset, d(proposal["quantity"]), notional_price(proposal))
    checks, failed = _apply(facts, checks_for(rules))
    if not failed:
        return {"outcome": "approve", "approved_quantity": proposal["quantity"], "checks": checks}
    smaller = _smaller_quantity(facts, failed)
    if smaller is not None:
        return {"outcome": "modify", "approved_quantity": fmt(smaller), "checks": checks}
    return {"outcome": "block", "approved_quantity": None, "checks": checks}


def _apply(facts: Facts, table: tuple) -> tuple[list, list]:
    """The checks of a table of (name, check) in its order, and the names of those that failed."""
    checks, failed = [], []
    for name, check in table:
        passed, detail = check(facts)
        checks.append({"rule": name, "passed": passed, "detail": detail})
        if not passed:
            failed.append(name)
    return checks, failed


def _smaller_quantity(facts: Facts, failed: list) -> Decimal | None:
    """The largest quantity, below the one asked for, that passes every check; None if there is none."""
    # A close larger than the position is refused outright, never cut down.
    if facts.is_close or not QUANTITY_BOUND_NAMES.issuperset(failed):
        return None
    instrument = facts.context["instrument"]
    largest = _round_down(min(rule.cap(facts) for rule in QUANTITY_BOUND_RULES), d(instrument["quantity_step"]))
    if not (d(instrument["min_quantity"]) <= largest < facts.quantity and largest > 0):
        return None
    # The caps are upper bounds; max_position also has a lower one (a buy must not
    # leave a short beyond the limit), so a cut-down quantity is only offered when it
    # really passes every check, and only ever downwards. Every rule that is not
    # quantity-bound has passed already and does not depend on the quantity.
    _, still_failed = _apply(facts.with_quantity(largest), QUANTITY_BOUND_CHECKS)
    return None if still_failed else largest


# --- the rules, in table order ------------------------------------------------------


ENABLED, REDUCE_ONLY, HALTED = "enabled", "reduce_only", "halted"


def _trading_enabled(facts: Facts) -> Verdict:
    context = facts.context
    state = context.get("trading_state")
    if state is None:
        # A context stored before trading states and pauses: the on/off switch alone,
        # with exactly the details it always had.
        state = ENABLED if context["trading_enabled"] else HALTED
    if state not in (ENABLED, REDUCE_ONLY):  # halted, or a state this engine does not know: closed
        return False, f"trading is halted: {context.get('trading_reason') or 'no reason given'}"
    if state == REDUCE_ONLY and not facts.is_close:
        return False, "trading is reduce-only: only closes pass"
    paused = context.get("strategy_paused")
    if paused is not None:
        return False, f"strategy {facts.proposal['strategy']} is paused: {paused or 'no reason given'}"
    if state == REDUCE_ONLY:
        return True, "trading is reduce-only; a close passes"
    return True, "trading is enabled"


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
    if not facts.context["instrument"]["enabled"]:
        return False, f"{symbol} is disabled"
    paused = facts.context.get("instrument_paused")  # absent from contexts stored before pauses
    if paused is not None:
        return False, f"{symbol} is paused: {paused or 'no reason given'}"
    return True, f"{symbol} is enabled"


def _min_confidence(facts: Facts) -> Verdict:
    confidence, minimum = d(facts.proposal["confidence"]), facts.ruleset.min_confidence
    ok = confidence >= minimum.value
    return ok, f"confidence {fmt(confidence)} {'>=' if ok else '<'} minimum {minimum.text}"


def _signal_age(facts: Facts) -> Verdict:
    age = _seconds_between(facts.proposal["signal_time"], facts.proposal["received_at"])
    maximum = facts.ruleset.max_signal_age
    ok = age <= maximum.value
    return ok, f"signal age {fmt(age)}s {'<=' if ok else '>'} maximum {maximum.text}s"


def _slippage(facts: Facts) -> Verdict:
    slippage, maximum = d(facts.proposal["expected_slippage_bps"]), facts.ruleset.max_slippage
    ok = slippage <= maximum.value
    return ok, f"expected slippage {fmt(slippage)} bps {'<=' if ok else '>'} maximum {maximum.text} bps"


def _price_collar(facts: Facts) -> Verdict:
    if facts.proposal["order_type"] != "limit":
        return True, "market order; priced at reference"
    maximum = facts.ruleset.max_price_deviation
    reference = d(facts.proposal["reference_price"])
    deviation = abs(facts.price - reference) / reference * BPS
    ok = deviation <= maximum.value
    # Rounded up, so a deviation just over the collar never reads as equal to it.
    shown = CEILING.quantize(deviation, CENT)
    return ok, (
        f"limit {fmt(facts.price)} is {fmt(shown)} bps from reference {fmt(reference)}; "
        f"{'within' if ok else 'outside'} collar {maximum.text} bps"
    )


def _max_order_notional(facts: Facts) -> Verdict:
    maximum = facts.ruleset.max_order_notional
    ok = facts.notional <= maximum.value
    detail = f"order notional {fmt(facts.notional)} {'<=' if ok else '>'} maximum {maximum.text}"
    if not facts.price:
        # A zero price caps nothing: no decision is made on it (DivisionByZero), also
        # when it would pass on its notional of 0.
        _order_notional_cap(facts)
    return ok, detail


def _order_notional_cap(facts: Facts) -> Decimal:
    return _floor_div(facts.ruleset.max_order_notional.value, facts.price)


def _max_position(facts: Facts) -> Verdict:
    if facts.is_close:
        return _close_within_position(facts)
    maximum = facts.ruleset.asset_limit(facts.proposal["symbol"], "max_position_quantity")
    projected = abs(facts.position + facts.sign * facts.quantity)
    ok = projected <= maximum.value
    detail = f"position after order {fmt(projected)} {'<=' if ok else '>'} maximum {maximum.text}"
    if not facts.asset_limits:
        detail += f" (no limit configured for {facts.proposal['symbol']})"
    return ok, detail


def _position_cap(facts: Facts) -> Decimal:
    maximum = facts.ruleset.asset_limit(facts.proposal["symbol"], "max_position_quantity")
    return maximum.value - facts.sign * facts.position


def _close_within_position(facts: Facts) -> Verdict:
    """A close must reduce an open position, by no more than what is left to close."""
    closable = d(facts.context["closable_quantity"])
    if not (facts.position != 0 and facts.sign * facts.position < 0):
        return False, f"close {facts.proposal['side']} does not reduce the open position {fmt(facts.position)}"
    ok = facts.quantity <= closable
    return ok, f"close of {fmt(facts.quantity)} {'<=' if ok else '>'} open quantity {fmt(closable)}"


# A close only lowers exposure: it passes every exposure cap.
RELEASES_EXPOSURE = (True, "a close releases exposure")


def _asset_exposure(facts: Facts) -> Verdict:
    if facts.is_close:
        return RELEASES_EXPOSURE
    symbol = facts.proposal["symbol"]
    maximum = facts.ruleset.asset_limit(symbol, "max_exposure")
    return _exposure(facts, f"{symbol} exposure", d(facts.context["asset_exposure"]), maximum)


def _asset_exposure_cap(facts: Facts) -> Decimal:
    maximum = facts.ruleset.asset_limit(facts.proposal["symbol"], "max_exposure")
    return _exposure_cap(facts, d(facts.context["asset_exposure"]), maximum)


def _budget(facts: Facts) -> Limit:
    """The strategy's budget: allocated from the portfolio risk budget under an allocation
    policy, else its own or the default one (rulesets without a policy have only these)."""
    strategy = facts.proposal["strategy"]
    if facts.rules.get("allocation_policy", "none") == "none":
        return facts.ruleset.strategy_budget(strategy)
    return _limit(allocated_budgets(facts.rules, {strategy: (facts.context.get("trailing_pnl") or "0")}).get(strategy, ZERO))


def allocation_weights(text: str) -> dict[str, Decimal]:
    """`allocation_weights` (SLUG=WEIGHT,…) as {slug: weight}."""
    return {slug: d(weight) for slug, weight in (item.split("=") for item in text.split(",") if item)}


def allocated_budgets(rules: dict, trailing_pnl: dict | None = None) -> dict[str, Decimal]:
    """Each weighted strategy's budget under the ruleset's allocation policy: its weight of
    portfolio_risk_budget (fixed); under pnl_scaled that share times 1 + its realized PnL over
    the trailing window / the share, held within [allocation_scale_min, allocation_scale_max].
    Rounded down to the cent. {} without a policy."""
    policy = rules.get("allocation_policy", "none")
    if policy == "none":
        return {}
    total, pnl = d(rules["portfolio_risk_budget"]), trailing_pnl or {}
    low, high = d(rules["allocation_scale_min"]), d(rules["allocation_scale_max"])
    budgets = {}
    for slug, weight in allocation_weights(rules["allocation_weights"]).items():
        share = CONTEXT.multiply(total, weight)
        if policy == "pnl_scaled" and share > 0:
            factor = min(max(CONTEXT.add(1, CONTEXT.divide(d(pnl.get(slug, "0")), share)), low), high)
            share = CONTEXT.multiply(share, factor)
        budgets[slug] = share.quantize(CENT, rounding=decimal.ROUND_FLOOR)
    return budgets


def _strategy_budget(facts: Facts) -> Verdict:
    if facts.is_close:
        return RELEASES_EXPOSURE
    strategy = facts.proposal["strategy"]
    return _exposure(facts, f"strategy {strategy} exposure", d(facts.context["strategy_exposure"]), _budget(facts))


def _strategy_budget_cap(facts: Facts) -> Decimal:
    return _exposure_cap(facts, d(facts.context["strategy_exposure"]), _budget(facts))


def _portfolio_exposure(facts: Facts) -> Verdict:
    if facts.is_close:
        return RELEASES_EXPOSURE
    current = d(facts.context["gross_exposure"])
    return _exposure(facts, "gross exposure", current, facts.ruleset.max_gross_exposure)


def _portfolio_exposure_cap(facts: Facts) -> Decimal:
    return _exposure_cap(facts, d(facts.context["gross_exposure"]), facts.ruleset.max_gross_exposure)


def _exposure(facts: Facts, label: str, current: Decimal, maximum: Limit) -> Verdict:
    after = current + facts.notional
    ok = after <= maximum.value
    return ok, f"{label} after order {fmt(after)} {'<=' if ok else '>'} maximum {maximum.text}"


def _exposure_cap(facts: Facts, current: Decimal, maximum: Limit) -> Decimal:
    return _floor_div(maximum.value - current, facts.price)


def _max_open_positions(facts: Facts) -> Verdict:
    count, maximum = facts.context["open_positions"], facts.rules["max_open_positions"]
    if facts.is_close or facts.context["has_open_position"]:
        return True, f"adds no new position ({count} open, maximum {maximum})"
    ok = count < maximum
    return ok, f"{count} open positions; a new one {'fits' if ok else 'exceeds'} maximum {maximum}"


def _order_rate(facts: Facts) -> Verdict:
    recent, maximum = facts.context["proposals_last_minute"], facts.rules["max_proposals_per_minute"]
    return recent < maximum, f"{recent} proposals from this strategy in the last minute; maximum {maximum}"


# --- post-ALPHA risk: realized losses ---------------------------------------------------
#
# Their inputs are realized PnL, which stays exactly 0 in ALPHA (exits are disabled), and
# they never block a close: a loss limit must not trap a position. They decide only under
# a ruleset that carries the loss-limit params (every one published since they exist); a
# ruleset published before them decides with the fifteen checks it always had.

LOSS_LIMIT_PARAMS = (
    "max_daily_loss_strategy",
    "max_daily_loss_asset",
    "max_daily_loss_portfolio",
    "max_drawdown_strategy",
    "max_drawdown_portfolio",
    "loss_cooldown_losses",
    "loss_cooldown_minutes",
)
ALPHA_NO_LOSSES = (True, "realized-only: no realized losses in ALPHA")


def has_loss_limits(rules: dict) -> bool:
    """Whether these params decide the post-ALPHA checks (absent from rulesets published before them)."""
    return "max_daily_loss_portfolio" in rules


def _loss_exempt(facts: Facts, what: str) -> Verdict | None:
    """The verdict of a post-ALPHA check that does not look at the losses, or None when it must."""
    if facts.rules["mode"] == "alpha":
        return ALPHA_NO_LOSSES
    if facts.is_close:
        return True, f"a close is never blocked by {what}"
    return None


def _within_loss(label: str, pnl: Decimal, limit: Limit) -> tuple[bool, str]:
    """A realized PnL against a loss limit: it passes while the loss is at most the limit."""
    ok = -pnl <= limit.value
    return ok, f"{label} {fmt(pnl)} {'>=' if ok else '<'} -{limit.text}"


def _daily_loss(facts: Facts) -> Verdict:
    exempt = _loss_exempt(facts, "the daily loss limit")
    if exempt is not None:
        return exempt
    today = facts.context.get("realized_today") or {}
    ruleset = facts.ruleset
    parts = (
        (f"strategy {facts.proposal['strategy']}", today.get("strategy", "0"), ruleset.loss_limit("max_daily_loss_strategy")),
        (facts.proposal["symbol"], today.get("asset", "0"), ruleset.loss_limit("max_daily_loss_asset")),
        ("portfolio", today.get("portfolio", "0"), ruleset.loss_limit("max_daily_loss_portfolio")),
    )
    return _all_within("realized PnL today", parts)


def _drawdown(facts: Facts) -> Verdict:
    exempt = _loss_exempt(facts, "the drawdown limit")
    if exempt is not None:
        return exempt
    drawdown = facts.context.get("drawdown") or {}
    ruleset = facts.ruleset
    parts = (
        (f"strategy {facts.proposal['strategy']}", drawdown.get("strategy", "0"), ruleset.loss_limit("max_drawdown_strategy")),
        ("portfolio", drawdown.get("portfolio", "0"), ruleset.loss_limit("max_drawdown_portfolio")),
    )
    return _all_within("realized PnL since high-water mark", parts)


def _all_within(label: str, parts) -> Verdict:
    ok, details = True, []
    for name, pnl, limit in parts:
        passed, detail = _within_loss(name, d(pnl), limit)
        ok = ok and passed
        details.append(detail)
    return ok, f"{label}: " + "; ".join(details)


def _loss_cooldown(facts: Facts) -> Verdict:
    exempt = _loss_exempt(facts, "a loss cooldown")
    if exempt is not None:
        return exempt
    streak = facts.context.get("loss_streak") or {}
    count, ended_at = int(streak.get("count", 0)), streak.get("ended_at")
    losses, minutes = int(facts.rules["loss_cooldown_losses"]), int(facts.rules["loss_cooldown_minutes"])
    where = f"{facts.proposal['strategy']} {facts.proposal['symbol']}"
    if count < losses or not ended_at or minutes == 0:
        return True, f"{count} consecutive losing closes on {where}; cooldown after {losses}"
    until = datetime.fromisoformat(ended_at) + timedelta(minutes=minutes)
    if datetime.fromisoformat(facts.proposal["received_at"]) < until:
        return False, f"{count} consecutive losing closes on {where}; opens blocked until {until.isoformat()} ({minutes} min cooldown)"
    return True, f"{count} consecutive losing closes on {where}; cooldown of {minutes} min ended {until.isoformat()}"


# The breakers a portfolio loss past its limit trips (they make trading reduce-only).
DAILY_LOSS_BREAKER, DRAWDOWN_BREAKER = "daily_loss_limit", "drawdown_limit"


def loss_breakers_crossed(*, context: dict, rules: dict) -> list[tuple[str, str]]:
    """(breaker, why) for each portfolio loss limit these inputs are past (FULL mode, a
    ruleset with the loss limits). Exactly at a limit is not past it, as the checks say."""
    if rules.get("mode") != "full" or not has_loss_limits(rules):
        return []
    crossed = []
    for breaker, label, pnl, param in (
        (DAILY_LOSS_BREAKER, "portfolio realized PnL today", (context.get("realized_today") or {}).get("portfolio", "0"), "max_daily_loss_portfolio"),
        (DRAWDOWN_BREAKER, "portfolio realized PnL since high-water mark", (context.get("drawdown") or {}).get("portfolio", "0"), "max_drawdown_portfolio"),
    ):
        limit = d(rules[param])
        if -d(pnl) > limit:
            crossed.append((breaker, f"{label} {fmt(d(pnl))} < -{fmt(limit)}"))
    return crossed


RULES = (
    #    name                  check                 cap (quantity-bound only)  reviewer
    Rule("trading_enabled",    _trading_enabled,     None,                      "execution"),
    Rule("circuit_breaker",    _circuit_breaker,     None,                      "execution"),
    Rule("exits_enabled",      _exits_enabled,       None,                      "risk"),
    Rule("instrument_enabled", _instrument_enabled,  None,                      "execution"),
    Rule("min_confidence",     _min_confidence,      None,                      "risk"),
    Rule("signal_age",         _signal_age,          None,                      "risk"),
    Rule("slippage",           _slippage,            None,                      "risk"),
    Rule("price_collar",       _price_collar,        None,                      "risk"),
    Rule("max_order_notional", _max_order_notional,  _order_notional_cap,       "risk"),
    Rule("max_position",       _max_position,        _position_cap,             "portfolio"),
    Rule("asset_exposure",     _asset_exposure,      _asset_exposure_cap,       "portfolio"),
    Rule("strategy_budget",    _strategy_budget,     _strategy_budget_cap,      "portfolio"),
    Rule("portfolio_exposure", _portfolio_exposure,  _portfolio_exposure_cap,   "portfolio"),
    Rule("max_open_positions", _max_open_positions,  None,                      "portfolio"),
    Rule("order_rate",         _order_rate,          None,                      "risk"),
    Rule("daily_loss",         _daily_loss,          None,                      "risk"),
    Rule("drawdown",           _drawdown,            None,                      "risk"),
    Rule("loss_cooldown",      _loss_cooldown,       None,                      "risk"),
)
LOSS_RULES = ("daily_loss", "drawdown", "loss_cooldown")
# The table as a ruleset published before the loss limits decides with it.
RULES_BEFORE_LOSS_LIMITS = tuple(rule for rule in RULES if rule.name not in LOSS_RULES)


CHECK_ORDER = tuple(rule.name for rule in RULES)
CHECK_ORDER_BEFORE_LOSS_LIMITS = tuple(rule.name for rule in RULES_BEFORE_LOSS_LIMITS)
# Checks that a smaller quantity can satisfy: only these may lead to `modify`.
QUANTITY_BOUND_RULES = tuple(rule for rule in RULES if rule.quantity_bound)
QUANTITY_BOUND = tuple(rule.name for rule in QUANTITY_BOUND_RULES)
QUANTITY_BOUND_NAMES = frozenset(QUANTITY_BOUND)
# The tables as _apply walks them, (name, check) in table order: walked for every
# decision, so without the Rule around each.
CHECKS = tuple((rule.name, rule.check) for rule in RULES)
CHECKS_BEFORE_LOSS_LIMITS = tuple((rule.name, rule.check) for rule in RULES_BEFORE_LOSS_LIMITS)
QUANTITY_BOUND_CHECKS = tuple((rule.name, rule.check) for rule in QUANTITY_BOUND_RULES)


def checks_for(rules: dict) -> tuple:
    """The (name, check) of the rules that decide under these params, in table order."""
    return CHECKS if has_loss_limits(rules) else CHECKS_BEFORE_LOSS_LIMITS


# --- force-execute: which failed checks two keys may override ---------------------------

# A force (requested by one officer, approved by another risk officer) may let a blocked
# proposal go on, but never past these: the trading switch (halted, or reduce-only, which
# fails the same check), a tripped breaker, ALPHA's disabled exits, a disabled instrument.
NEVER_FORCED = ("trading_enabled", "circuit_breaker", "exits_enabled", "instrument_enabled")
# The caps a ruleset marks hard unless it says otherwise (its `force_hard_rules`): the
# fat-finger collar, the largest order, and the position and exposure caps of an asset and
# of the whole book. A strategy's own budget, the signal checks and the rate stay overridable.
FORCE_HARD_DEFAULT = ("price_collar", "max_order_notional", "max_position", "asset_exposure", "portfolio_exposure")
# What a ruleset may list as hard (the others are hard always).
FORCE_HARDENABLE = tuple(rule.name for rule in RULES if rule.name not in NEVER_FORCED)


def force_hard_rules(rules: dict) -> tuple[str, ...]:
    """The rules no force overrides under these params, in table order: NEVER_FORCED and the
    ruleset's `force_hard_rules` (comma-separated names; a ruleset published before the
    parameter existed has FORCE_HARD_DEFAULT)."""
    listed = rules.get("force_hard_rules")
    hard = set(FORCE_HARD_DEFAULT if listed is None else (name for name in str(listed).split(",") if name))
    return tuple(rule.name for rule in RULES if rule.name in NEVER_FORCED or rule.name in hard)


def force_refusals(*, checks: list, rules: dict) -> list[str]:
    """Why a force may not override these checks: one "RULE: detail" per failed check that is
    hard under `rules`. Empty: every failed check may be overridden."""
    hard = force_hard_rules(rules)
    return [f"{c['rule']}: {c['detail']}" for c in checks if not c["passed"] and c["rule"] in hard]


def force_expired(*, expires_at: str, at: str) -> bool:
    """Whether a force request that expires at `expires_at` has expired at `at` (ISO-8601
    times, given: the engine reads no clock)."""
    return datetime.fromisoformat(at) >= datetime.fromisoformat(expires_at)


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
    micros = (datetime.fromisoformat(end) - datetime.fromisoformat(start)) // MICROSECOND
    return Decimal(micros) / MICROS_PER_SECOND
