"""The anchor: NautilusTrader's RiskEngine taking LIMIT orders through its pre-trade checks.

Runs only under an interpreter that has nautilus-trader installed, in a virtualenv of
its own (a yardstick, never a dependency of ChronosX), and imports nothing of ChronosX:

    python -m venv /tmp/anchor && /tmp/anchor/bin/pip install nautilus-trader==1.221.0
    /tmp/anchor/bin/python bench/anchor_nautilus.py --n 50000 --repeat 5

Prints one JSON line: the median of --repeat rounds for each case. With --serve it
runs one round per line read from stdin ("pass" or "block") and answers each with a
JSON line: bench/engine.py (--anchor-python) drives it that way, so that its own
rounds and the anchor's alternate and share whatever else the machine is doing.

The engine is wired as Nautilus' own unit tests wire it: a TestClock (time stands
still), a MessageBus, a Cache without a database, a Portfolio, and a cash account at
the instrument's venue, so the balance checks run too. The execution side is a stub
endpoint on the bus that only counts. Cases, both on BTCUSDT (Binance spot):

- pass: a buy of 0.001-0.050 BTC at 65,000.00: price and quantity precision, min/max
  quantity, notional under the 10,000 USDT per-order cap, min notional, free balance,
  cumulative notional, trading state, the submit throttler, then sent to execution.
- block: a buy of 1 BTC at 65,000.00: the same checks up to the per-order notional
  cap, which denies it (NOTIONAL_EXCEEDS_MAX_PER_ORDER): the order is added to the
  cache and an OrderDenied event is sent to the execution engine. (Purged again,
  untimed, after each round.)

The submit throttler is set far above the number of orders sent, so no order is
dropped for rate (with the TestClock standing still, the default 100/s would drop all
but the first 100).
"""

import argparse
import gc
import json
import platform
import statistics
import sys
import time

import nautilus_trader
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import MessageBus, TestClock
from nautilus_trader.common.factories import OrderFactory
from nautilus_trader.config import RiskEngineConfig
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import SubmitOrder
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import AccountType, OrderSide
from nautilus_trader.model.events import AccountState
from nautilus_trader.model.identifiers import AccountId, StrategyId, TraderId
from nautilus_trader.model.objects import AccountBalance, Money, Price, Quantity
from nautilus_trader.portfolio.portfolio import Portfolio
from nautilus_trader.risk.engine import RiskEngine
from nautilus_trader.test_kit.providers import TestInstrumentProvider

MAX_NOTIONAL_PER_ORDER = 10_000  # USDT, as ChronosX's bench ruleset
PRICE = Price.from_str("65000.00")
BLOCKED_QUANTITY = Quantity.from_str("1.000000")  # 65,000 USDT notional
CASES = ("pass", "block")


class Anchor:
    """One RiskEngine with its bus, cache, portfolio and account, and a counting execution stub."""

    def __init__(self):
        self.clock = TestClock()
        self.trader_id = TraderId("BENCH-001")
        self.strategy_id = StrategyId("BENCH-STRATEGY")
        self.msgbus = MessageBus(trader_id=self.trader_id, clock=self.clock)
        self.cache = Cache(database=None)
        self.portfolio = Portfolio(msgbus=self.msgbus, cache=self.cache, clock=self.clock)
        self.instrument = TestInstrumentProvider.btcusdt_binance()
        self.cache.add_instrument(self.instrument)
        self.portfolio.update_account(
            AccountState(
                account_id=AccountId(f"{self.instrument.id.venue}-001"),
                account_type=AccountType.CASH,
                base_currency=None,  # multi-currency: the USDT balance pays for buys
                reported=True,
                balances=[AccountBalance(Money(100_000_000, USDT), Money(0, USDT), Money(100_000_000, USDT))],
                margins=[],
                info={},
                event_id=UUID4(),
                ts_event=0,
                ts_init=0,
            )
        )
        self.risk_engine = RiskEngine(
            portfolio=self.portfolio,
            msgbus=self.msgbus,
            cache=self.cache,
            clock=self.clock,
            config=RiskEngineConfig(
                max_order_submit_rate="1000000000/00:00:01",
                max_notional_per_order={str(self.instrument.id): MAX_NOTIONAL_PER_ORDER},
            ),
        )
        self.sent = 0
        self.denied = 0
        self.msgbus.register(endpoint="ExecEngine.execute", handler=self._execute)
        self.msgbus.register(endpoint="ExecEngine.process", handler=self._process)
        self.orders = OrderFactory(trader_id=self.trader_id, strategy_id=self.strategy_id, clock=self.clock)

    def _execute(self, command):
        self.sent += 1

    def _process(self, event):
        self.denied += 1

    def forget(self, commands: list) -> None:
        """Purge denied orders from the cache, so that every round starts from the same state."""
        for command in commands:
            self.cache.purge_order(command.order.client_order_id)

    def commands(self, case: str, n: int) -> list:
        """n fresh SubmitOrder commands (a denied order cannot be submitted again)."""
        commands = []
        for i in range(n):
            quantity = BLOCKED_QUANTITY if case == "block" else Quantity.from_str(f"0.{1000 + i % 49000:06d}")
            order = self.orders.limit(self.instrument.id, OrderSide.BUY, quantity, PRICE)
            commands.append(
                SubmitOrder(
                    trader_id=self.trader_id,
                    strategy_id=self.strategy_id,
                    order=order,
                    command_id=UUID4(),
                    ts_init=self.clock.timestamp_ns(),
                )
            )
        return commands


def measure(anchor: Anchor, case: str, n: int) -> dict:
    """One round: per-order timings (p50, p99) over n orders, then a tight loop over n more."""
    execute = anchor.risk_engine.execute
    clock = time.perf_counter_ns

    commands = anchor.commands(case, n)
    timings = []
    before = anchor.sent, anchor.denied
    gc.collect()
    for command in commands:
        start = clock()
        execute(command)
        timings.append(clock() - start)
    _verify(anchor, case, n, before)
    anchor.forget(commands)

    commands = anchor.commands(case, n)
    before = anchor.sent, anchor.denied
    gc.collect()
    start, cpu_start = clock(), time.process_time_ns()
    for command in commands:
        execute(command)
    elapsed, cpu = clock() - start, time.process_time_ns() - cpu_start
    _verify(anchor, case, n, before)
    anchor.forget(commands)

    timings.sort()
    return {
        "rate": n / (elapsed / 1e9),
        "cpu_rate": n / (cpu / 1e9),
        "p50_us": timings[n // 2] / 1000,
        "p99_us": timings[min(n - 1, n * 99 // 100)] / 1000,
    }


def _verify(anchor: Anchor, case: str, n: int, before: tuple[int, int]) -> None:
    """Each case took the path it is named for: all n sent on to execution, or all n denied."""
    sent, denied = anchor.sent - before[0], anchor.denied - before[1]
    if (sent, denied) != ((0, n) if case == "block" else (n, 0)):
        raise SystemExit(f"anchor {case}: of {n} orders {sent} were sent on and {denied} denied")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="orders per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case; the median is reported")
    parser.add_argument("--serve", action="store_true", help="one round per stdin line (pass|block)")
    args = parser.parse_args()

    anchor = Anchor()
    # Warm up both paths once, untimed.
    for case in CASES:
        commands = anchor.commands(case, min(args.n, 2000))
        for command in commands:
            anchor.risk_engine.execute(command)
        anchor.forget(commands)

    about = {
        "nautilus_trader": nautilus_trader.__version__,
        "python": platform.python_version(),
        "n": args.n,
        "max_notional_per_order": MAX_NOTIONAL_PER_ORDER,
    }
    if args.serve:
        print(json.dumps(about), flush=True)
        for line in sys.stdin:
            case = line.strip()
            if case not in CASES:
                raise SystemExit(f"unknown case {case!r}; cases are {', '.join(CASES)}")
            print(json.dumps(measure(anchor, case, args.n)), flush=True)
        return

    result = {**about, "repeat": args.repeat}
    for case in CASES:
        rounds = [measure(anchor, case, args.n) for _ in range(args.repeat)]
        result[case] = {key: statistics.median(r[key] for r in rounds) for key in ("rate", "cpu_rate", "p50_us", "p99_us")}
        result[case]["rates"] = [round(r["rate"]) for r in rounds]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
