#!/usr/bin/env python
"""Benchmark verify_audit: build a chain of N events in a throwaway test database, verify it, print events/s.

Usage: DATABASE_URL=postgres://… python scripts/bench_verify_audit.py [N] [--chunk-size K]
Never touches the configured database itself: it creates and drops test_<name>.
"""

import argparse
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from chronosx.canonical import canonical_json  # noqa: E402


def build_chain(n: int):
    from ledger.models import AuditEvent
    from ledger.services import GENESIS_HASH, audit_event_hash

    prev, t0, batch = GENESIS_HASH, datetime(2026, 1, 1, tzinfo=timezone.utc), []
    for seq in range(1, n + 1):
        created_at = (t0 + timedelta(microseconds=seq * 1234)).isoformat()
        proposal_id = str(uuid.uuid4()) if seq % 2 else None
        payload = canonical_json({"seq": seq, "price": "65000.5", "quantity": "0.0010", "checks": ["ok"] * 15})
        h = audit_event_hash(seq=seq, kind="bench", actor="bench", created_at=created_at, proposal_id=proposal_id,
                             payload=payload, prev_hash=prev)
        batch.append(AuditEvent(seq=seq, kind="bench", actor="bench", created_at=created_at, proposal_id=proposal_id,
                                payload=payload, prev_hash=prev, hash=h))
        prev = h
        if len(batch) == 5000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=20000)
    parser.add_argument("--chunk-size", type=int, default=5000)
    args = parser.parse_args()

    from ledger.selectors import audit_chain_verify

    old_name = connection.settings_dict["NAME"]
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        build_chain(args.n)
        built = time.perf_counter() - started
        started = time.perf_counter()
        report = audit_chain_verify(chunk_size=args.chunk_size)
        elapsed = time.perf_counter() - started
        assert report.ok and report.count == args.n, report
        print(f"{connection.vendor} ({test_name}): built {args.n} events in {built:.2f}s")
        print(f"verified {report.count} events in {elapsed:.3f}s: {report.count / elapsed:,.0f} events/s")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
