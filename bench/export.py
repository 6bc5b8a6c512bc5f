#!/usr/bin/env python
"""Benchmark `manage.py export audit`: peak memory (RSS) and time for a chain of N events.

Usage: DATABASE_URL=postgres://… DJANGO_SECRET_KEY=… python bench/export.py [N] [--format csv xlsx]

Builds N chained audit events in a throwaway database (bench_export_<pid>, dropped at the
end; the configured database is never touched), then runs the real command, as a child
process, once per format, and reports the child's peak RSS (getrusage of the child), its wall
time and the file's size. The rows stream from a server-side cursor into the file, so the
peak should not grow with N.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from chronosx.canonical import canonical_json  # noqa: E402
from governance.services.staff import staff_add  # noqa: E402
from ledger.models import AuditEvent  # noqa: E402
from ledger.services import GENESIS_HASH, audit_event_hash  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def build_chain(n: int) -> None:
    """N events a second apart from T0, each with a payload the size of a decision's."""
    prev, batch = GENESIS_HASH, []
    for seq in range(1, n + 1):
        created_at = (T0 + timedelta(milliseconds=seq * 100)).isoformat()
        proposal_id = str(uuid.uuid4()) if seq % 2 else None
        payload = canonical_json({"seq": seq, "price": "65000.5", "quantity": "0.0010", "checks": ["ok"] * 15})
        h = audit_event_hash(seq=seq, kind="bench", actor="bench", created_at=created_at, proposal_id=proposal_id,
                             payload=payload, prev_hash=prev)
        batch.append(AuditEvent(seq=seq, kind="bench", actor="bench", created_at=created_at, proposal_id=proposal_id,
                                payload=payload, prev_hash=prev, hash=h, txid=0))
        prev = h
        if len(batch) == 5000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)


def database_url(settings_dict) -> str:
    s = settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def run_export(url: str, fmt: str, n: int, folder: Path) -> dict:
    out = folder / f"audit.{fmt}"
    days = (T0 + timedelta(milliseconds=n * 100)).date().isoformat()
    env = {**os.environ, "DATABASE_URL": url, "CHRONOSX_EMBEDDED_LOOP": "0", "CHRONOSX_NODE_KEY_DIR": str(folder / "keys")}
    argv = [sys.executable, str(ROOT / "manage.py"), "export", "audit", "--from", T0.date().isoformat(), "--to", days,
            "--format", fmt, "--out", str(out), "--user", "bench-compliance"]
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    stdout, stderr = child.stdout.read(), child.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export {fmt} failed: {stderr}")
    return {
        "format": fmt,
        "printed": stdout.strip(),
        "seconds": elapsed,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: KiB
        "file_mb": out.stat().st_size / 1e6,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--format", nargs="+", default=["csv", "xlsx"], choices=["csv", "xlsx"])
    args = parser.parse_args()

    old_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_export_{os.getpid()}"
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        build_chain(args.n)
        staff_add(name="bench-compliance", role="compliance", password=None, actor="bench")
        print(f"{connection.vendor} ({test_name}): built {args.n:,} chained events in {time.perf_counter() - started:.1f}s")
        url = database_url(connection.settings_dict)
        connection.close()
        with tempfile.TemporaryDirectory() as folder:
            for fmt in args.format:
                r = run_export(url, fmt, args.n, Path(folder))
                print(f"export audit {fmt}: {r['printed']} in {r['seconds']:.1f}s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                      f"file {r['file_mb']:.0f} MB")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print(f"this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
