"""A ruleset's parameters: one table, each row with its kind, default and allowed range.

The Ruleset model's fields are made from RULE_PARAMETERS, and the same rows validate a value
wherever one comes in (the model's clean, so the admin form; the `ruleset set` command), name
the lines of the diff, and are what the engine is given. A new parameter is one row here, plus
the migration `makemigrations` then writes. The per-asset limits and per-strategy budgets are
rows of their own models; their values are checked by ASSET_PARAMETERS and BUDGET_PARAMETER.

Allowed ranges (inclusive unless marked open):
    min_confidence            0 .. 1
    max_signal_age_seconds    (0 .. 86400]
    max_slippage_bps          0 .. 10000
    max_price_deviation_bps   0 .. 10000
    max_order_notional        (0 .. 10^15]
    default_strategy_budget   0 .. 10^15
    max_gross_exposure        (0 .. 10^15]
    max_open_positions        integer 1 .. 100000
    max_proposals_per_minute  integer 1 .. 1000000
    quorum_required           2 or 3 (of the three MPC nodes: never a single vote)
    vote_timeout_seconds      (0 .. 300]
    mode                      alpha or full
    max_daily_loss_strategy   0 .. 10^15  (loss of realized PnL today, UTC, per strategy)
    max_daily_loss_asset      0 .. 10^15  (the same, per asset, all strategies)
    max_daily_loss_portfolio  0 .. 10^15  (the same, the whole portfolio)
    max_drawdown_strategy     0 .. 10^15  (realized PnL below its high-water mark, per strategy)
    max_drawdown_portfolio    0 .. 10^15  (the same, the whole portfolio)
    loss_cooldown_losses      integer 1 .. 1000  (consecutive losing closes on a strategy
                              and instrument that start a cooldown)
    loss_cooldown_minutes     integer 0 .. 10080  (how long opens on it are then blocked; 0: never)
    allocation_policy         none, fixed or pnl_scaled
    portfolio_risk_budget     0 .. 10^15
    allocation_weights        SLUG=WEIGHT,… each 0 < w <= 1, together at most 1
    allocation_window_days    integer 1 .. 365
    allocation_scale_min      0 .. 1;  allocation_scale_max  1 .. 10
    force_hard_rules          comma-separated rule names, each at most once, of those a
                              ruleset may mark (engine.FORCE_HARDENABLE); empty: none beyond
                              the controls (engine.NEVER_FORCED), which are hard always
    asset limits, budgets     0 .. 10^15
Decimals are plain text (digits, one optional point, at most 18 decimal places) and are kept
exactly as written.
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models

from chronosx.fields import ExactDecimalField
from governance.engine import FORCE_HARD_DEFAULT, FORCE_HARDENABLE

DECIMAL, INTEGER, CHOICE, RULE_LIST, WEIGHTS = "decimal", "integer", "choice", "rule list", "weights"
WEIGHT_ITEM = re.compile(r"([a-z0-9_-]{1,64})=([0-9]{1,16}(\.[0-9]{1,18})?)")

# Caps above this are typing mistakes; divided by a small price they would also leave the
# engine's 50 significant digits.
CEILING = 10**15
# The agent API's decimal text (no exponent, no '+', no spaces), with bounded length.
DECIMAL_TEXT = re.compile(r"-?[0-9]{1,16}(\.[0-9]{1,18})?")
INTEGER_TEXT = re.compile(r"-?[0-9]{1,16}")


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # DECIMAL (exact text), INTEGER, CHOICE or RULE_LIST (names of choices, comma-separated)
    default: str | int | None
    help: str
    low: int | str | None = None  # allowed range: low <= x (low < x when low_open) ...
    high: int | str | None = None  # ... and x <= high
    low_open: bool = False
    choices: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        """The allowed values, as an error message and the admin's help text say them."""
        if self.kind == CHOICE:
            return " or ".join(self.choices)
        if self.kind == WEIGHTS:
            return "comma-separated SLUG=WEIGHT, each strategy once, each weight 0 < w <= 1, together at most 1; or nothing"
        if self.kind == RULE_LIST:
            return f"comma-separated names, each at most once, of {', '.join(self.choices)}; or nothing"
        if self.kind == INTEGER and self.high is not None and int(self.high) - int(self.low) == 1:
            return f"{self.low} or {self.high}"
        noun = "an integer" if self.kind == INTEGER else "a decimal"
        upper = f" <= {self.high}" if self.high is not None else ""
        return f"{noun} {self.low} {'<' if self.low_open else '<='} x{upper}"

    def parse(self, raw, *, name: str | None = None):
        """The value that `raw` (text, or the model's own value) stands for; a ValidationError
        naming the parameter (`name`, e.g. assets.BTCUSDT.max_exposure) and its allowed range
        when it is not one."""
        if isinstance(raw, Decimal):
            text = format(raw, "f") if raw.is_finite() else str(raw)  # a form's 1E+3 is 1000, 0E-7 is 0.0000000
        else:
            text = raw if isinstance(raw, str) else "" if raw is None or isinstance(raw, bool) else str(raw)
        if self.kind == CHOICE:
            if text not in self.choices:
                raise self.error(raw, name=name)
            return text
        if self.kind == WEIGHTS:
            items = [WEIGHT_ITEM.fullmatch(item) for item in text.split(",")] if text else []
            if not all(items):
                raise self.error(raw, name=name)
            weights = {m.group(1): Decimal(m.group(2)) for m in items}
            if len(weights) != len(items) or not all(0 < w <= 1 for w in weights.values()) or sum(weights.values()) > 1:
                raise self.error(raw, name=name)
            return text
        if self.kind == RULE_LIST:
            names = text.split(",") if text else []
            if len(set(names)) != len(names) or not set(names) <= set(self.choices):
                raise self.error(raw, name=name)
            return ",".join(choice for choice in self.choices if choice in names)  # in the table's order
        if not (INTEGER_TEXT if self.kind == INTEGER else DECIMAL_TEXT).fullmatch(text):
            raise self.error(raw, name=name)
        value = int(text) if self.kind == INTEGER else Decimal(text)
        if self.low is not None:
            low = Decimal(self.low)
            if value < low or (self.low_open and value == low):
                raise self.error(raw, name=name)
        if self.high is not None and value > Decimal(self.high):
            raise self.error(raw, name=name)
        return value

    def error(self, raw, *, name: str | None = None) -> ValidationError:
        shown = "nothing" if raw is None or raw == "" else repr(raw if isinstance(raw, str) else str(raw))
        return ValidationError(
            "%(name)s: must be %(allowed)s; got %(got)s",
            code="out_of_range",
            params={"name": name or self.name, "allowed": self.allowed, "got": shown},
        )

    def text(self, value) -> str:
        """A value as the diff and the audit trail show it (the engine's text for decimals)."""
        return "none" if value is None or value == "" else str(value)

    def model_field(self) -> models.Field:
        help_text = f"{self.help}. Allowed: {self.allowed}."
        if self.kind == DECIMAL:
            return ExactDecimalField(default=self.default, help_text=help_text)
        if self.kind == INTEGER:
            return models.PositiveIntegerField(default=self.default, help_text=help_text)
        if self.kind == WEIGHTS:
            return models.CharField(max_length=1000, blank=True, default=self.default, help_text=help_text)
        if self.kind == RULE_LIST:
            return models.CharField(max_length=300, blank=True, default=self.default, help_text=help_text)
        return models.CharField(max_length=32, choices=[(c, c) for c in self.choices], default=self.default, help_text=help_text)


def decimal(name, default, help, low, high=CEILING, *, low_open=False) -> Parameter:
    return Parameter(name, DECIMAL, default, help, low=low, high=high, low_open=low_open)


def integer(name, default, help, low, high) -> Parameter:
    return Parameter(name, INTEGER, default, help, low=low, high=high)


# The engine's `rules`, in the order they are shown. A new parameter is a row here.
RULE_PARAMETERS = (
    Parameter("mode", CHOICE, "alpha", "alpha: closes are blocked and realized PnL stays 0", choices=("alpha", "full")),
    decimal("min_confidence", "0.60", "Lowest signal confidence that passes", 0, 1),
    decimal("max_signal_age_seconds", "60", "Latency guard: oldest signal that passes, seconds", 0, 86400, low_open=True),
    decimal("max_slippage_bps", "25", "Largest expected slippage that passes, bps", 0, 10000),
    decimal("max_price_deviation_bps", "100", "Price collar: limit price vs reference price, bps", 0, 10000),
    decimal("max_order_notional", "10000", "Largest order, quote currency", 0, low_open=True),
    decimal("default_strategy_budget", "50000", "Exposure budget of a strategy without its own row, quote currency", 0),
    decimal("max_gross_exposure", "200000", "Portfolio cap, quote currency", 0, low_open=True),
    integer("max_open_positions", 10, "Open positions, all strategies", 1, 100_000),
    integer("max_proposals_per_minute", 120, "Proposals per strategy per minute", 1, 1_000_000),
    integer("quorum_required", 2, "MPC approvals needed, of the three nodes", 2, 3),
    decimal("vote_timeout_seconds", "10", "Time the MPC nodes have to vote, seconds", 0, 300, low_open=True),
    decimal("max_daily_loss_strategy", "2000", "Daily loss limit of a strategy: realized PnL today (UTC) may fall this far below 0, quote currency", 0),
    decimal("max_daily_loss_asset", "5000", "Daily loss limit of an asset, all strategies, quote currency", 0),
    decimal("max_daily_loss_portfolio", "10000", "Daily loss limit of the portfolio; crossing it trips daily_loss_limit (reduce-only), quote currency", 0),
    decimal("max_drawdown_strategy", "5000", "Drawdown limit of a strategy: realized PnL below its high-water mark, quote currency", 0),
    decimal("max_drawdown_portfolio", "20000", "Drawdown limit of the portfolio; crossing it trips drawdown_limit (reduce-only), quote currency", 0),
    integer("loss_cooldown_losses", 3, "Consecutive losing closes on a strategy and instrument that start a cooldown", 1, 1000),
    integer("loss_cooldown_minutes", 30, "Cooldown after those losses: opens on that strategy and instrument are blocked, minutes (0: no cooldown)", 0, 10080),
    Parameter(
        "allocation_policy",
        CHOICE,
        "none",
        "Capital allocation: none (strategy budgets as set), fixed (portfolio_risk_budget split by allocation_weights) "
        "or pnl_scaled (those weights scaled by each strategy's realized PnL over allocation_window_days, within bounds)",
        choices=("none", "fixed", "pnl_scaled"),
    ),
    decimal("portfolio_risk_budget", "0", "The portfolio's risk budget that the allocation splits across strategies, quote currency", 0),
    Parameter("allocation_weights", WEIGHTS, "", "Each strategy's weight of the portfolio risk budget, e.g. demo=0.6,trend=0.4"),
    integer("allocation_window_days", 30, "Trailing window of realized PnL that scales the weights (pnl_scaled), days", 1, 365),
    decimal("allocation_scale_min", "0.5", "Lowest factor a strategy's budget is scaled to (pnl_scaled)", 0, 1),
    decimal("allocation_scale_max", "1.5", "Highest factor a strategy's budget is scaled to (pnl_scaled)", 1, 10),
    Parameter(
        "force_hard_rules",
        RULE_LIST,
        ",".join(FORCE_HARD_DEFAULT),
        "Caps no force-execute overrides (trading state, breakers, ALPHA exits and disabled instruments never are)",
        choices=FORCE_HARDENABLE,
    ),
)
BY_NAME = {p.name: p for p in RULE_PARAMETERS}

# The fields of an AssetLimit row (`assets.SYMBOL.FIELD`) and of a StrategyBudget row (`strategy_budgets.SLUG`).
ASSET_PARAMETERS = {
    "max_position_quantity": decimal("max_position_quantity", None, "Per strategy, base units", 0),
    "max_exposure": decimal("max_exposure", None, "All strategies, quote notional", 0),
}
BUDGET_PARAMETER = decimal("max_exposure", None, "Quote notional", 0)

ASSETS, BUDGETS = "assets", "strategy_budgets"
PARAMETER_NAMES = (
    *BY_NAME,
    *(f"{ASSETS}.SYMBOL.{name}" for name in ASSET_PARAMETERS),
    f"{BUDGETS}.SLUG",
)


@dataclass(frozen=True)
class Path:
    """Where a parameter name points: a ruleset field, or a field of an asset's or a strategy's row."""

    name: str  # as written: min_confidence, assets.BTCUSDT.max_exposure, strategy_budgets.demo
    parameter: Parameter | None  # None: the whole row (assets.SYMBOL, strategy_budgets.SLUG), to remove it
    scope: str | None = None  # None (a ruleset field), ASSETS or BUDGETS
    key: str | None = None  # the symbol or the strategy slug
    field: str | None = None  # the asset row's field


def parameter_path(name: str, *, whole_row: bool = False) -> Path:
    """The parameter `name` names; ValidationError listing the parameters when it names none.
    With whole_row, `assets.SYMBOL` and `strategy_budgets.SLUG` may name a row (to remove it)."""
    parts = name.split(".")
    if len(parts) == 1 and name in BY_NAME:
        return Path(name, BY_NAME[name])
    if parts[0] == ASSETS and len(parts) == 3 and parts[1] and parts[2] in ASSET_PARAMETERS:
        return Path(name, ASSET_PARAMETERS[parts[2]], ASSETS, parts[1], parts[2])
    if parts[0] == ASSETS and len(parts) == 2 and parts[1] and whole_row:
        return Path(name, None, ASSETS, parts[1])
    if parts[0] == BUDGETS and len(parts) == 2 and parts[1]:
        return Path(name, BUDGET_PARAMETER, BUDGETS, parts[1])
    raise ValidationError(
        "%(name)s: not a ruleset parameter; parameters are %(names)s",
        code="unknown_parameter",
        params={"name": name, "names": ", ".join(PARAMETER_NAMES)},
    )


def parameters_errors(instance, parameters) -> dict:
    """{field: [message]} for each of `parameters` whose value on `instance` is not allowed."""
    errors = {}
    for parameter in parameters:
        try:
            parameter.parse(getattr(instance, parameter.name))
        except ValidationError as exc:
            errors[parameter.name] = exc.messages
    return errors
