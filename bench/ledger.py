"""Benchmark what a fill and the loss checks' inputs cost as the ledger grows.

    createdb -h 127.0.0.1 -U cx cxbench_ledger
    DATABASE_URL=postgres://cx:cx@127.0.0.1:5432/cxbench_ledger DJANGO_SECRET_KEY=x \\
        python bench/ledger.py [--steps 0,1000,5000] [--samples 50]
    dropdb -h 127.0.0.1 -U cx cxbench_ledger

Against a scratch database (it migrates it and writes into it). In ALPHA nothing is exited, so
every opening fill adds a lot that its book keeps open; after ALPHA every close adds a realized
PnL row, and every decision and every portfolio vote reads the loss checks' inputs over all of
them. At each step it books opening fills into one fresh book until it holds that many open lots
and times one more fill (its proposal and order rows included, as tests/builders.py's Book makes
them); and it makes round trips (open, close) in another book until that many closes exist and
times `realized_loss_inputs`. Prints CPU (this process) and wall time, p50 over --samples.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")
os.environ.setdefault("CHRONOSX_EMBEDDED_LOOP", "0")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from ledger.selectors import realized_loss_inputs  # noqa: E402
from tests.builders import T0, Book  # noqa: E402


def timed(function, samples: int) -> str:
    cpu, wall = [], []
    for _ in range(samples):
        started_cpu, started = time.process_time(), time.perf_counter()
        function()
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    return f"{statistics.median(cpu):6.2f} ms CPU, {statistics.median(wall):6.2f} ms wall"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="0,1000,5000", help="open lots, and closes, at which to measure")
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor}; p50 of {args.samples} each")
    opening = Book(strategy=f"bench-lots-{uuid.uuid4().hex[:6]}")
    closing = Book(strategy=f"bench-closes-{uuid.uuid4().hex[:6]}")
    lots = closes = 0
    for step in [int(s) for s in args.steps.split(",")]:
        while lots < step:
            opening.buy("0.0010", "65000")
            lots += 1
        while closes < step:
            closing.buy("0.0010", "65000")
            closing.close_sell("0.0010", "64990")
            closes += 1
        fill = timed(lambda: opening.buy("0.0010", "65000"), args.samples)
        lots += args.samples
        inputs = timed(
            lambda: realized_loss_inputs(
                strategy_id=closing.strategy.id, instrument_id=closing.instrument.id, day=T0.date()
            ),
            args.samples,
        )
        print(f"{step:6d} open lots: a fill {fill}   |   {step:6d} closes: the loss checks' inputs {inputs}")


if __name__ == "__main__":
    main()
