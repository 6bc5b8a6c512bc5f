"""The Freqtrade mixin's decisions, without Freqtrade: a stand-in for IStrategy's hooks and a
client that answers as ChronosX would. Every way of not getting an approval says no, since
Freqtrade itself takes an exception in confirm_trade_entry/exit for a yes."""

import sys
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
sys.path[:0] = [str(CLIENTS / "python"), str(CLIENTS / "freqtrade")]
from chronosx_client import Unreachable  # noqa: E402
from chronosx_freqtrade import ChronosXGate  # noqa: E402

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


class StrategyHooks:
    """IStrategy's hooks the mixin wraps, as a strategy that adds to positions and re-prices
    its entries would answer them."""

    added_stake = None  # what adjust_trade_position asks for (a tuple: with an order tag)
    new_price = None  # what adjust_order_price moves an order to

    def adjust_trade_position(self, **kwargs):
        return self.added_stake

    def adjust_order_price(self, *, current_order_rate, **kwargs):
        return self.new_price or current_order_rate

    def custom_stake_amount(self, *, proposed_stake, **kwargs):
        return proposed_stake

    def confirm_trade_entry(self, **kwargs):
        return True

    def confirm_trade_exit(self, **kwargs):
        return True


class Exchange:
    """Freqtrade's Exchange rounding for a market with a 0.001 step."""

    def amount_to_precision(self, pair, amount):
        return float(Decimal(str(amount)).quantize(Decimal("0.001"), ROUND_DOWN))

    def price_to_precision(self, pair, rate):
        return rate


class ChronosX:
    """Answers each proposal with the given status and decision, or raises; records the asks."""

    def __init__(self, status="filled", outcome="approve", approved=None, error=None):
        self.status, self.outcome, self.approved, self.error, self.asked = status, outcome, approved, error, []

    def propose(self, **body):
        self.asked.append(body)
        if self.error:
            raise self.error
        approved = None if self.outcome == "block" else (self.approved or body["quantity"])
        return {"id": f"p{len(self.asked)}", "status": self.status,
                "decision": {"outcome": self.outcome, "approved_quantity": approved,
                             "checks": [{"rule": "instrument_enabled", "passed": self.outcome != "block"}]}}


class Governed(ChronosXGate, StrategyHooks):
    order_types = {"entry": "limit", "exit": "limit"}

    def __init__(self, chronosx, runmode="dry_run"):
        self.config = {"runmode": runmode, "chronosx": {"url": "http://chronosx", "token": "t", "strategy": "demo"}}
        self.dp = SimpleNamespace(_exchange=Exchange())
        self.__dict__["_chronosx_client_"] = chronosx


def stake(strategy, proposed, rate=3500.0):
    return strategy.custom_stake_amount(pair="ETH/USDT", current_time=NOW, current_rate=rate, proposed_stake=proposed,
                                        min_stake=1.0, max_stake=10_000.0, leverage=1.0, entry_tag=None, side="long")


def confirm(strategy, amount, rate=3500.0):
    return strategy.confirm_trade_entry(pair="ETH/USDT", order_type="limit", amount=amount, rate=rate,
                                        time_in_force="GTC", current_time=NOW, entry_tag=None, side="long")


def exit_(strategy, amount=0.2):
    trade = SimpleNamespace(is_short=False, trade_direction="long")
    return strategy.confirm_trade_exit(pair="ETH/USDT", trade=trade, order_type="limit", amount=amount, rate=3500.0,
                                       time_in_force="GTC", exit_reason="exit_signal", current_time=NOW)


def test_an_approved_entry_keeps_its_stake_and_is_confirmed():
    chronosx = ChronosX()
    strategy = Governed(chronosx)
    assert stake(strategy, 700.0) == 700.0
    assert confirm(strategy, 0.2) is True
    [asked] = chronosx.asked
    assert asked["quantity"] == "0.2" and asked["side"] == "buy" and asked["intent"] == "open"
    assert asked["limit_price"] == asked["reference_price"] == "3500" and asked["wait"] == 20 and asked["until_approved"]


def test_a_modified_entry_is_cut_to_the_approved_quantity_and_confirmed_only_up_to_it():
    strategy = Governed(ChronosX(outcome="modify", approved="0.050"))
    cut = stake(strategy, 700.0)
    assert Exchange().amount_to_precision("ETH/USDT", cut / 3500.0) == 0.05
    assert confirm(strategy, cut / 3500.0) is True

    stake(strategy, 700.0)
    assert confirm(strategy, 0.051) is False


def test_a_blocked_entry_is_refused():
    strategy = Governed(ChronosX(status="blocked", outcome="block"))
    assert stake(strategy, 700.0) == 700.0
    assert confirm(strategy, 0.2) is False


@pytest.mark.parametrize("status", ["pending", "expired", "rejected"])
def test_an_entry_not_approved_when_the_wait_ends_is_refused(status):
    strategy = Governed(ChronosX(status=status, outcome="approve"))
    stake(strategy, 700.0)
    assert confirm(strategy, 0.2) is False


def test_an_unreachable_chronosx_refuses_entries_and_exits():
    strategy = Governed(ChronosX(error=Unreachable("connection refused")))
    assert stake(strategy, 700.0) == 700.0
    assert confirm(strategy, 0.2) is False
    assert exit_(strategy) is False


def test_an_entry_not_sized_by_the_mixin_is_asked_for_at_confirm():
    chronosx = ChronosX()
    assert confirm(Governed(chronosx), 0.2) is True
    assert [asked["quantity"] for asked in chronosx.asked] == ["0.2"]


def test_an_exit_asks_for_a_close_and_obeys_a_block():
    chronosx = ChronosX(status="blocked", outcome="block")
    assert exit_(Governed(chronosx)) is False
    assert chronosx.asked[0]["intent"] == "close" and chronosx.asked[0]["side"] == "sell"
    assert exit_(Governed(ChronosX())) is True


def test_backtests_ask_nothing():
    chronosx = ChronosX(error=AssertionError("asked"))
    strategy = Governed(chronosx, runmode="backtest")
    assert stake(strategy, 700.0) == 700.0 and confirm(strategy, 0.2) is True and exit_(strategy) is True
    assert chronosx.asked == []


def add(strategy, wanted, rate=3500.0):
    strategy.added_stake = wanted
    trade = SimpleNamespace(pair="ETH/USDT", leverage=1.0, trade_direction="long")
    return strategy.adjust_trade_position(
        trade=trade, current_time=NOW, current_rate=rate, current_profit=0.0, min_stake=1.0, max_stake=10_000.0,
        current_entry_rate=rate, current_exit_rate=rate, current_entry_profit=0.0, current_exit_profit=0.0)


def test_an_addition_to_a_position_is_asked_and_goes_on_only_as_approved():
    approve = ChronosX()
    assert add(Governed(approve), 700.0) == 700.0
    assert approve.asked[0]["quantity"] == "0.2" and approve.asked[0]["intent"] == "open"
    assert add(Governed(ChronosX()), (700.0, "dca")) == (700.0, "dca")  # the order tag kept

    cut = add(Governed(ChronosX(outcome="modify", approved="0.050")), 700.0)
    assert Exchange().amount_to_precision("ETH/USDT", cut / 3500.0) == 0.05

    assert add(Governed(ChronosX(status="blocked", outcome="block")), 700.0) is None
    assert add(Governed(ChronosX(status="pending")), 700.0) is None
    assert add(Governed(ChronosX(error=Unreachable("connection refused"))), 700.0) is None


def test_a_reduction_or_no_addition_asks_nothing():
    chronosx = ChronosX()
    assert add(Governed(chronosx), -350.0) == -350.0  # a partial exit: confirm_trade_exit asks
    assert add(Governed(chronosx), None) is None
    assert chronosx.asked == []


def reprice(strategy, new_price, is_entry=True):
    strategy.new_price = new_price
    order = SimpleNamespace(safe_remaining=0.2, safe_price=3500.0)
    return strategy.adjust_order_price(trade=None, order=order, pair="ETH/USDT", current_time=NOW,
                                       proposed_rate=new_price, current_order_rate=3500.0, entry_tag=None,
                                       side="long", is_entry=is_entry)


def test_an_entry_replaced_at_a_new_price_is_asked_for_its_new_amount_and_kept_unless_approved_whole():
    approve = ChronosX()
    assert reprice(Governed(approve), 3400.0) == 3400.0
    # The remaining stake (0.2 at 3,500) buys 0.205 at 3,400: that is what is asked.
    assert approve.asked[0]["quantity"] == "0.205" and approve.asked[0]["limit_price"] == "3400"

    assert reprice(Governed(ChronosX(outcome="modify", approved="0.200")), 3400.0) == 3500.0  # kept as it is
    assert reprice(Governed(ChronosX(status="blocked", outcome="block")), 3400.0) == 3500.0
    assert reprice(Governed(ChronosX(error=Unreachable("connection refused"))), 3400.0) == 3500.0


def test_an_exit_re_priced_or_an_order_kept_asks_nothing():
    chronosx = ChronosX()
    assert reprice(Governed(chronosx), 3600.0, is_entry=False) == 3600.0
    assert reprice(Governed(chronosx), None) == 3500.0
    assert chronosx.asked == []
