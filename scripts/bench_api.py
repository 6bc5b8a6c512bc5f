"""Benchmark the agent API end to end against a running ChronosX: POST proposals from
several client threads, then wait until every one is decided. Prints throughput and
latency percentiles. Sends only to the given loopback URL, a bounded number of requests.

Usage: python scripts/bench_api.py URL TOKEN [N] [THREADS]
e.g.   python scripts/bench_api.py http://127.0.0.1:8000 "$TOKEN" 300 8
"""

import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from urllib.parse import urlparse

import requests

FINAL = {"blocked", "expired", "filled", "rejected", "cancelled"}


def main():
    url, token = sys.argv[1].rstrip("/"), sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("benchmarks run against loopback only")
    session_headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def post(i):
        body = {
            "strategy": "demo", "symbol": "BTCUSDT", "side": "buy", "quantity": "0.0010",
            "order_type": "limit", "limit_price": "65000", "reference_price": "65000",
            "expected_slippage_bps": 1, "confidence": 0.95,
            "signal_time": datetime.now(timezone.utc).isoformat(),
        }
        start = time.perf_counter()
        response = requests.post(
            f"{url}/api/v1/proposals/", json=body, timeout=60,
            headers={**session_headers, "Idempotency-Key": f"bench-{uuid.uuid4().hex}"},
        )
        return time.perf_counter() - start, response.status_code, response.json().get("id")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(post, range(n)))
    posted = time.perf_counter() - started

    ids = [r[2] for r in results if r[1] in (200, 202)]
    pending = set(ids)
    # One list request per round: polling each proposal would itself hit the agent's rate limit.
    while pending and time.perf_counter() - started < 300:
        listing = requests.get(f"{url}/api/v1/proposals/?limit=1000", headers=session_headers, timeout=30)
        if listing.status_code == 200:
            pending -= {p["id"] for p in listing.json() if p["status"] in FINAL}
        if pending:
            time.sleep(0.5)
    settled = time.perf_counter() - started

    latencies = sorted(r[0] for r in results)
    codes = {}
    for _, code, _ in results:
        codes[code] = codes.get(code, 0) + 1
    pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000  # noqa: E731
    print(f"proposals: {n} from {threads} threads  status codes: {codes}")
    print(f"POST throughput: {n / posted:,.1f}/s  latency ms: p50 {pct(50):.1f}  p95 {pct(95):.1f}  p99 {pct(99):.1f}  "
          f"mean {statistics.mean(latencies) * 1000:.1f}")
    print(f"all final (decided, voted, routed, filled or stopped) after {settled:.2f} s; still open: {len(pending)}")


if __name__ == "__main__":
    main()
