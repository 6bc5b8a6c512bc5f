"""Benchmark the pure rule engine, optionally against NautilusTrader's RiskEngine.

    python bench/engine.py [--n N] [--repeat R] [--anchor-python PATH]

For passing proposals (approve) and blocked ones (trading halted and confidence too
low: still all 15 checks with their details), prints decisions/s of a tight loop (by
the wall clock, and by the process's CPU time, which other processes on a shared
machine disturb less), µs p50/p99 of single decisions (perf_counter_ns), and peak
traced memory. Each figure is the median of R rounds. A modify case (the re-check
included) is shown for itself.

With --anchor-python (the interpreter of a separate virtualenv with
`pip install nautilus-trader==1.221.0`: a yardstick, never a dependency), it also
runs bench/anchor_nautilus.py under that interpreter in the same invocation, a round
of the anchor after each round of the engine on the same case, and prints the anchor's
figures and the ratio ChronosX/anchor (the median of the per-round ratios, by wall
clock and by CPU time).

Plain Python, no Django: only governance.engine is imported.
"""

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from governance.engine import evaluate  # noqa: E402

RULES = {
    "version": 1, "mode": "alpha", "min_confidence": "0.60", "max_signal_age_seconds": "60",
    "max_slippage_bps": "25", "max_price_deviation_bps": "100", "max_order_notional": "10000",
    "default_strategy_budget": "1000000", "max_gross_exposure": "2000000", "max_open_positions": 500,
    "max_proposals_per_minute": 600, "quorum_required": 2, "vote_timeout_seconds": "10",
    "assets": {"BTCUSDT": {"max_position_quantity": "100", "max_exposure": "1000000"}},
    "strategy_budgets": {"demo": "1000000"},
}
# The engine gets a ruleset's params as a fresh dict each time (a JSONField read):
# the inputs cycle through this many equal copies rather than share one object.
RULES_COPIES = 64
CASES = {
    # case: (what the engine must answer, is there an anchor for it)
    "pass": ("approve", True),
    "block": ("block", True),
    "modify": ("modify", False),
}


def inputs(case: str, i: int) -> dict:
    """The i-th input of a case. Every proposal differs (quantity, times, exposure)."""
    quantity = f"0.{10 + i % 490:04d}"  # 0.0010 .. 0.0499 BTC: 65 .. 3,244 USDT
    proposal = {
        "id": str(i), "strategy": "demo", "symbol": "BTCUSDT", "side": "buy",
        "quantity": quantity, "order_type": "limit", "limit_price": "65000",
        "reference_price": "65010.5", "expected_slippage_bps": "1", "confidence": "0.95",
        "signal_time": f"2026-11-25T12:00:00.{i % 1_000_000:06d}+00:00",
        "received_at": f"2026-11-25T12:00:01.{(i * 7) % 1_000_000:06d}+00:00",
        "intent": "open",
    }
    context = {
        "trading_enabled": True, "trading_reason": "", "tripped_breakers": [],
        "instrument": {"enabled": True, "min_quantity": "0.0001", "quantity_step": "0.0001"},
        "position_quantity": "0.5", "closable_quantity": "0.5", "asset_exposure": f"{32500 + i % 1000}",
        "strategy_exposure": f"{32500 + i % 1000}", "gross_exposure": f"{32500 + i % 1000}", "open_positions": 1,
        "has_open_position": True, "proposals_last_minute": i % 500,
    }
    if case == "block":
        context.update(trading_enabled=False, trading_reason="maintenance window")
        proposal["confidence"] = "0.10"
    elif case == "modify":
        proposal["quantity"] = f"{1 + i % 50}.0000"  # over the 10,000 USDT order cap: cut down
    return {"proposal": proposal, "context": context, "rules": None}


def build(case: str, n: int) -> list[dict]:
    copies = [json.loads(json.dumps(RULES)) for _ in range(RULES_COPIES)]
    built = [inputs(case, i) for i in range(n)]
    for i, given in enumerate(built):
        given["rules"] = copies[i % RULES_COPIES]
    return built


def measure(case: str, built: list[dict]) -> dict:
    """One round: single-decision timings over the inputs, then a tight loop over them."""
    n = len(built)
    clock = time.perf_counter_ns
    expected = CASES[case][0]
    timings, wrong = [], 0
    gc.collect()
    for given in built:
        start = clock()
        decision = evaluate(**given)
        timings.append(clock() - start)
        wrong += decision["outcome"] != expected
    if wrong:
        raise SystemExit(f"{case}: {wrong} of {n} decisions are not {expected!r}")
    gc.collect()
    start, cpu_start = clock(), time.process_time_ns()
    for given in built:
        evaluate(**given)
    elapsed, cpu = clock() - start, time.process_time_ns() - cpu_start
    timings.sort()
    return {
        "rate": n / (elapsed / 1e9),
        "cpu_rate": n / (cpu / 1e9),
        "p50_us": timings[n // 2] / 1000,
        "p99_us": timings[min(n - 1, n * 99 // 100)] / 1000,
    }


def peak_memory(built: list[dict]) -> int:
    """Peak traced memory over these decisions, on an untimed pass (tracing slows Python several-fold)."""
    gc.collect()
    tracemalloc.start()
    for given in built:
        evaluate(**given)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


class AnchorProcess:
    """bench/anchor_nautilus.py --serve under another interpreter: one round per request."""

    def __init__(self, python: str, n: int):
        script = Path(__file__).with_name("anchor_nautilus.py")
        self.process = subprocess.Popen(
            [python, str(script), "--serve", "--n", str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.about = json.loads(self._answer())

    def round(self, case: str) -> dict:
        self.process.stdin.write(case + "\n")
        self.process.stdin.flush()
        return json.loads(self._answer())

    def _answer(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the anchor stopped (exit {self.process.wait()})")
        return line

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def line(label: str, rounds: list[dict]) -> str:
    each = ", ".join(f"{r['rate']:,.0f}" for r in rounds)
    return (
        f"{label:<24} {median(rounds, 'rate'):>9,.0f}/s (cpu time: {median(rounds, 'cpu_rate'):>7,.0f}/s)   "
        f"p50 {median(rounds, 'p50_us'):>6.1f} µs   p99 {median(rounds, 'p99_us'):>7.1f} µs   rounds: {each}"
    )


def ratios(ours: list[dict], theirs: list[dict], key: str) -> list[float]:
    """ChronosX/anchor per round: each pair ran back to back, under the same load."""
    return [mine[key] / anchor[key] for mine, anchor in zip(ours, theirs, strict=True)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="decisions per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case; medians are reported")
    parser.add_argument("--anchor-python", help="python of a virtualenv with nautilus-trader==1.221.0")
    args = parser.parse_args()

    anchor = AnchorProcess(args.anchor_python, args.n) if args.anchor_python else None
    print(f"python {platform.python_version()}  n={args.n}  rounds={args.repeat}  (figures: medians of the rounds)")
    print(f"cpus: {os.cpu_count()}  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if anchor:
        print(f"anchor: nautilus_trader {anchor.about['nautilus_trader']} RiskEngine, python {anchor.about['python']}")
    try:
        for case, (outcome, has_anchor) in CASES.items():
            built = build(case, args.n)
            for given in built[:2000]:  # warm-up, untimed
                evaluate(**given)
            ours, theirs = [], []
            for _ in range(args.repeat):
                ours.append(measure(case, built))
                if anchor and has_anchor:
                    theirs.append(anchor.round(case))
            print(f"\n{case} ({outcome}):")
            print(line("  chronosx engine", ours))
            traced = min(len(built), 1000)
            print(f"  {'peak traced memory':<22} {peak_memory(built[:traced]) / 1024:>9,.0f} KiB over {traced:,} decisions")
            if theirs:
                print(line("  nautilus RiskEngine", theirs))
                wall, cpu = ratios(ours, theirs, "rate"), ratios(ours, theirs, "cpu_rate")
                verdict = "met" if statistics.median(wall) >= 1 else "not met"
                print(
                    f"  {'chronosx/anchor':<22} {statistics.median(wall):>9.2f}x (cpu time: {statistics.median(cpu):.2f}x)"
                    f"   per round: {', '.join(f'{r:.2f}' for r in wall)}   target >= 1.00x: {verdict}"
                )
            del built
    finally:
        if anchor:
            anchor.close()
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
