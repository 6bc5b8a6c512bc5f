"""Benchmark the impact replay: a ruleset draft re-evaluated on N stored decisions.

    createdb -h 127.0.0.1 -U cx cxbench_impact
    DATABASE_URL=postgres://cx:cx@127.0.0.1:5432/cxbench_impact DJANGO_SECRET_KEY=x \\
        python bench/impact.py [--n 100000] [--repeat 3] [--workers W]
    dropdb -h 127.0.0.1 -U cx cxbench_impact

Against a scratch database (never one that matters: it migrates it and writes N proposals
and decisions into it). The first run stores N decisions of the last few days, each decided
by the pure engine against the demo ruleset from a varied proposal and context (3 strategies,
2 instruments, limit and market orders, confidence, slippage, signal age, exposure and order
rate spread so that every kind of outcome occurs), stored exactly as the evaluation stage
stores them (inputs, checks). Later runs reuse them. It then makes a draft that tightens
several rules and times `impact_run`, the whole of what the task does: count, stream the
rows, evaluate (in worker processes from 20,000 decisions on), compare, store the report.
Prints the median and best wall-clock time of R rounds, decisions/s, and the counts.

--workers forces the number of worker processes (0: all in this process).
"""

import argparse
import os
import platform
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")
os.environ.setdefault("CHRONOSX_EMBEDDED_LOOP", "0")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from governance import engine  # noqa: E402
from governance.models import Agent, Decision, Instrument, Proposal, Ruleset, Strategy  # noqa: E402
from governance.selectors.controls import ruleset_current  # noqa: E402
from governance.services import impact, rulesets  # noqa: E402

STRATEGIES = ("alpha-momo", "beta-meanrev", "gamma-carry")
PRICES = {"BTCUSDT": 65000, "ETHUSDT": 3200}
BATCH = 2000


def _proposal_and_context(rng: random.Random, strategy: str, received_at):
    symbol = rng.choice(list(PRICES))
    reference = PRICES[symbol] * (1 + rng.uniform(-0.02, 0.02))
    step = "0.0001" if symbol == "BTCUSDT" else "0.001"
    places = len(step) - 2
    # Quantities from tiny to several times the 10,000 order cap.
    quantity = round(rng.choice([0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 3.0]) * (65000 / PRICES[symbol]) * rng.uniform(0.5, 1.5), places)
    quantity = max(quantity, float(step))
    order_type = rng.choice(["limit", "limit", "market"])
    limit = reference * (1 + rng.uniform(-0.012, 0.012))
    signal_age = rng.choice([0.2, 1, 5, 20, 45, 75])
    proposal = {
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "strategy": strategy,
        "symbol": symbol,
        "side": rng.choice(["buy", "sell"]),
        "quantity": f"{quantity:.{places}f}",
        "order_type": order_type,
        "limit_price": f"{limit:.2f}" if order_type == "limit" else None,
        "reference_price": f"{reference:.2f}",
        "expected_slippage_bps": str(rng.choice([0, 1, 3, 10, 20, 30, 40])),
        "confidence": f"{rng.uniform(0.45, 1.0):.2f}",
        "signal_time": (received_at - timedelta(seconds=signal_age)).isoformat(),
        "received_at": received_at.isoformat(),
        "intent": "open",
    }
    exposure = rng.uniform(0, 900_000)
    context = {
        "trading_enabled": rng.random() > 0.02,
        "trading_reason": "maintenance",
        "tripped_breakers": [],
        "instrument": {"enabled": True, "min_quantity": step, "quantity_step": step},
        "position_quantity": f"{rng.uniform(-2, 2):.{places}f}",
        "closable_quantity": "0",
        "asset_exposure": f"{exposure:.2f}",
        "strategy_exposure": f"{exposure * rng.uniform(0.2, 1):.2f}",
        "gross_exposure": f"{exposure * rng.uniform(1, 1.8):.2f}",
        "open_positions": rng.randint(0, 520),
        "has_open_position": rng.random() < 0.5,
        "proposals_last_minute": rng.randint(0, 650),
    }
    return proposal, context


def store_history(n: int, *, seed: int = 7) -> None:
    """N proposals and their decisions (by the ruleset in force), received over the last 5 days."""
    rng = random.Random(seed)
    ruleset = ruleset_current()
    rules = ruleset.params
    strategies = {slug: Strategy.objects.get_or_create(slug=slug)[0] for slug in STRATEGIES}
    agent, _ = Agent.objects.get_or_create(name="bench-impact", defaults={"token_hash": uuid.uuid4().hex, "token_prefix": "bench"})
    instruments = {i.symbol: i for i in Instrument.objects.all()}
    now = timezone.now()
    made = 0
    while made < n:
        proposals, decisions = [], []
        for _ in range(min(BATCH, n - made)):
            slug = rng.choice(STRATEGIES)
            received_at = now - timedelta(seconds=rng.uniform(60, 5 * 86400))
            data, context = _proposal_and_context(rng, slug, received_at)
            result = engine.evaluate(proposal=data, context=context, rules=rules)
            proposal = Proposal(
                id=uuid.UUID(data["id"]), agent=agent, strategy=strategies[slug], instrument=instruments[data["symbol"]],
                side=data["side"], quantity=data["quantity"], order_type=data["order_type"], limit_price=data["limit_price"],
                reference_price=data["reference_price"], expected_slippage_bps=data["expected_slippage_bps"],
                confidence=data["confidence"], signal_time=data["signal_time"], received_at=received_at,
                status="blocked" if result["outcome"] == "block" else "filled", status_changed_at=received_at,
                idempotency_key=data["id"], request_hash="0" * 64,
            )
            proposals.append(proposal)
            decisions.append(Decision(
                proposal=proposal, outcome=result["outcome"], approved_quantity=result["approved_quantity"],
                ruleset=ruleset, ruleset_version=ruleset.version, decided_at=received_at + timedelta(milliseconds=5),
                checks=result["checks"], inputs={"proposal": data, "context": context, "rules": rules}, digest="0" * 64,
            ))
        with transaction.atomic():
            Proposal.objects.bulk_create(proposals)
            Decision.objects.bulk_create(decisions)
        made += len(proposals)
        print(f"  stored {made:,} decisions", end="\r", flush=True)
    print()


def tightened_draft() -> Ruleset:
    """A draft that moves many decisions: more confidence, a lower order cap, a tighter
    slippage guard and collar, a smaller BTC limit, one strategy's budget cut."""
    draft = rulesets.ruleset_new_draft(source=ruleset_current(), actor="bench", user="bench")
    rulesets.ruleset_edit(
        ruleset_id=draft.pk,
        changes={
            "min_confidence": "0.70",
            "max_order_notional": "5000",
            "max_slippage_bps": "15",
            "max_price_deviation_bps": "80",
            "assets.BTCUSDT.max_exposure": "700000",
            "strategy_budgets.demo": "500000",
        },
        actor="bench",
        user="bench",
    )
    return Ruleset.objects.get(pk=draft.pk)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        sys.exit("bench/impact.py: set DATABASE_URL to a scratch database (it writes N decisions into it)")

    print(f"python {platform.python_version()}  {connection.vendor}  cpus: {os.cpu_count()}  "
          f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    call_command("migrate", verbosity=0)
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    have = Decision.objects.filter(decided_at__gte=timezone.now() - timedelta(days=7)).count()
    if have < args.n:
        print(f"storing {args.n - have:,} decisions (once)")
        store_history(args.n - have)
    draft = tightened_draft()
    times, report = [], None
    for _ in range(args.repeat):
        queued = impact.impact_request(ruleset=draft, days=7, actor="bench")
        start = time.perf_counter()
        report = impact.impact_run(report_id=queued.pk, workers=args.workers)
        times.append(time.perf_counter() - start)
        assert report.status == "done", report.error
    result = report.result
    workers = impact._workers(result["evaluated"]) if args.workers is None else args.workers
    print(f"impact replay of v{draft.version} over 7 days: {result['evaluated']:,} decisions, "
          f"{result['changed']:,} would change, worker processes: {workers or 'none'}")
    print(f"  wall clock: median {statistics.median(times):.2f} s, best {min(times):.2f} s "
          f"(rounds: {', '.join(f'{t:.2f}' for t in times)}); "
          f"{result['evaluated'] / statistics.median(times):,.0f} decisions/s")
    print(f"  transitions: { {k: v for k, v in result['transitions'].items() if v} }")
    print(f"  by rule: {result['by_rule']}")
    print(f"  by strategy: {result['by_strategy']}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rulesets.ruleset_discard(ruleset_id=draft.pk, actor="bench")


if __name__ == "__main__":
    main()
