"""Benchmark the pure rule engine: decisions per second on one core, and peak memory.

Usage: python scripts/bench_engine.py [N]
"""

import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from governance.engine import evaluate  # noqa: E402

RULES = {
    "version": 1, "mode": "alpha", "min_confidence": "0.60", "max_signal_age_seconds": "60",
    "max_slippage_bps": "25", "max_price_deviation_bps": "100", "max_order_notional": "10000",
    "default_strategy_budget": "1000000", "max_gross_exposure": "2000000", "max_open_positions": 500,
    "max_proposals_per_minute": 600, "quorum_required": 2, "vote_timeout_seconds": "10",
    "assets": {"BTCUSDT": {"max_position_quantity": "100", "max_exposure": "1000000"}},
    "strategy_budgets": {"demo": "1000000"},
}
CONTEXT = {
    "trading_enabled": True, "trading_reason": "", "tripped_breakers": [],
    "instrument": {"enabled": True, "min_quantity": "0.0001", "quantity_step": "0.0001"},
    "position_quantity": "0.5", "closable_quantity": "0.5", "asset_exposure": "32500",
    "strategy_exposure": "32500", "gross_exposure": "32500", "open_positions": 1,
    "has_open_position": True, "proposals_last_minute": 3,
}


def proposal(i):
    # Alternate a sound order and an oversized one, so both approve and modify paths run.
    return {
        "id": str(i), "strategy": "demo", "symbol": "BTCUSDT", "side": "buy",
        "quantity": "0.0010" if i % 2 else "1000", "order_type": "limit", "limit_price": "65000",
        "reference_price": "65010.5", "expected_slippage_bps": "1", "confidence": "0.95",
        "signal_time": "2026-11-25T12:00:00+00:00", "received_at": "2026-11-25T12:00:01.250000+00:00",
        "intent": "open",
    }


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    inputs = [proposal(i) for i in range(n)]
    start = time.perf_counter()
    outcomes = {}
    for p in inputs:
        outcome = evaluate(proposal=p, context=CONTEXT, rules=RULES)["outcome"]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    elapsed = time.perf_counter() - start
    # Memory is traced on a separate, untimed pass (tracing slows Python down several-fold).
    tracemalloc.start()
    for p in inputs[:1000]:
        evaluate(proposal=p, context=CONTEXT, rules=RULES)
    _, peak = tracemalloc.get_traced_memory()
    print(f"decisions: {n}  outcomes: {outcomes}")
    print(f"elapsed: {elapsed:.3f} s  rate: {n / elapsed:,.0f} decisions/s  mean: {elapsed / n * 1e6:.1f} us")
    print(f"peak traced memory: {peak / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
