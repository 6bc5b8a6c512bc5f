"""Hold N server-sent-event streams open on the real stack and measure commit→delivery.

    python bench/stream.py [--streams 200] [--rate 2] [--duration 30] [--web-workers 2]
                           [--without-sequencer] [--keep]

It starts the same stack as bench/pipeline.py (PostgreSQL, Redis, uvicorn, the governance
worker and beat, the audit sequencer, the three node workers, the router on the sandbox
venue); --without-sequencer leaves the sequencer out, so that beat's round (every second) is
the only one that chains, as before the sequencer existed. Half the streams use a staff token
(the drop copy) and half the agent's own token; the agent sends every proposal, so every
stream is owed every proposal, decision, vote, order and fill event. All streams resume after
the chain's head at the start (Last-Event-ID), then proposals are posted open loop at `rate`
a second for `duration` seconds. It prints

- commit→delivery p50/p95/p99/max over every event on every stream: from the event's own
  stored timestamp (created_at, written inside its transaction, so a little before the commit:
  the figure is if anything too high) to the moment the client read it;
- events owed, delivered, lost and duplicated (summed over the streams);
- the peak RSS of the web processes (VmHWM).

Everything runs on this machine, the client included (one asyncio process, aiohttp).
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import FINAL, Stack, body, django_setup_for  # noqa: E402


class Reader:
    """One stream: every event id it was sent, with the wall-clock time it arrived."""

    def __init__(self, token: str):
        self.token = token
        self.received: list[tuple[int, float]] = []
        self.opened = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession, base: str, after: int):
        headers = {"Authorization": f"Token {self.token}", "Last-Event-ID": str(after), "Accept": "text/event-stream"}
        async with session.get(f"{base}/api/v1/stream/", headers=headers) as response:
            response.raise_for_status()
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith(": stream open"):
                    self.opened.set()
                elif line.startswith("id: "):
                    self.received.append((int(line[4:]), time.time()))


async def post_proposals(session, base: str, token: str, rate: float, duration: float) -> list:
    """Open loop: one POST every 1/rate s whatever the answers; the ids of those accepted."""
    accepted, codes = [], Counter()

    async def post():
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json",
                   "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}
        try:
            async with session.post(f"{base}/api/v1/proposals/", data=body(), headers=headers) as response:
                codes[response.status] += 1
                if response.status < 300:
                    accepted.append((await response.json())["id"])
        except aiohttp.ClientError as exc:
            codes[type(exc).__name__] += 1

    tasks, start = [], time.monotonic()
    for i in range(int(rate * duration)):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.ensure_future(post()))
    await asyncio.gather(*tasks)
    return accepted, codes


def owed_events(after: int) -> dict[int, float]:
    """seq → created_at (epoch seconds) of every event a stream sends, chained after `after`."""
    from governance.selectors.events import stream_type
    from ledger.models import AuditEvent

    rows = AuditEvent.objects.filter(seq__gt=after, proposal_id__isnull=False).values_list("seq", "kind", "created_at")
    return {seq: created_at.timestamp() for seq, kind, created_at in rows if stream_type(kind)}


def wait_final(proposal_ids, seconds: float) -> int:
    """Wait for the proposals to be final and every event to be chained; how many are still open."""
    from governance.models import Proposal
    from ledger.models import AuditEvent

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        still_open = Proposal.objects.filter(id__in=proposal_ids).exclude(status__in=FINAL).count()
        if not still_open and not AuditEvent.objects.filter(seq__isnull=True).exists():
            return 0
        time.sleep(0.5)
    return still_open


def cpu_seconds(pids) -> float:
    """User and system CPU time the processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def quantiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def at(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (f"p50 {at(0.50):.1f} / p95 {at(0.95):.1f} / p99 {at(0.99):.1f} / max {ordered[-1]:.1f} ms "
            f"(mean {statistics.fmean(ordered):.1f})")


async def measure(stack: Stack, args, staff_token: str) -> None:
    from governance.selectors.events import chain_head_seq

    after = await asyncio.to_thread(chain_head_seq)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        readers = [Reader(staff_token if n % 2 == 0 else stack.token) for n in range(args.streams)]
        running = []
        # Opened 20 at a time: each opening request holds a PostgreSQL connection of its own for a
        # moment, and 200 at once would exceed the server's max_connections (100 by default).
        for first in range(0, len(readers), 20):
            batch = readers[first:first + 20]
            running += [asyncio.ensure_future(reader.run(session, stack.base, after)) for reader in batch]
            await asyncio.wait_for(asyncio.gather(*(reader.opened.wait() for reader in batch)), timeout=60)
        print(f"{args.streams} streams open after seq {after}; posting {args.rate:g}/s for {args.duration:g} s")
        accepted, codes = await post_proposals(session, stack.base, stack.token, args.rate, args.duration)
        still_open = await asyncio.to_thread(wait_final, accepted, 60)
        owed = await asyncio.to_thread(owed_events, after)
        # Give the streams a moment to deliver the last events (no event may be missing at the end).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(len({s for s, _ in r.received} & owed.keys()) < len(owed) for r in readers):
            await asyncio.sleep(0.2)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    latencies, delivered, lost, duplicated, earliest = [], 0, 0, 0, {}
    for reader in readers:
        seen = Counter(seq for seq, _ in reader.received)
        duplicated += sum(count - 1 for count in seen.values())
        lost += sum(1 for seq in owed if seq not in seen)
        delivered += sum(1 for seq in seen if seq in owed)
        first_arrival = {}
        for seq, at in reader.received:
            first_arrival.setdefault(seq, at)
        latencies += [(at - owed[seq]) * 1000 for seq, at in first_arrival.items() if seq in owed]
        for seq, at in first_arrival.items():
            earliest[seq] = min(at, earliest.get(seq, at))
    print(f"proposals: status codes {dict(codes)}, accepted {len(accepted)}, not final after 60 s {still_open}")
    print(f"events owed per stream {len(owed)}; owed in all {len(owed) * len(readers)}, delivered {delivered}, "
          f"lost {lost}, duplicated {duplicated}")
    print(f"commit->delivery  {quantiles(latencies)}")
    # The first stream to get an event shows the chaining and reading; the rest, the fan-out.
    print(f"commit->first of the streams  {quantiles([(at - owed[seq]) * 1000 for seq, at in earliest.items() if seq in owed])}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2, help="proposals per second")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="prefork processes per Celery worker")
    parser.add_argument("--without-sequencer", action="store_true", help="chain by beat's round alone (before)")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    args = parser.parse_args()

    stack = Stack(args)
    try:
        stack.start()
        django_setup_for(stack)
        staff_token = stack.manage("create_agent", f"bench-staff-{uuid.uuid4().hex[:6]}", "--strategy", "demo",
                                   "--staff").splitlines()[-1]
        print(f"stack up: web workers {args.web_workers}, sequencer {'off' if args.without_sequencer else 'on'}; "
              f"logs in {stack.tmp}; load average {os.getloadavg()[0]:.1f}")
        before = {name: cpu_seconds(pids) for name, pids in stack.pids().items()}
        client_before = sum(os.times()[:2])
        asyncio.run(measure(stack, args, staff_token))
        used = {name: cpu_seconds(pids) - before.get(name, 0) for name, pids in stack.pids().items()}
        print("CPU seconds used during the run: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.items())
              + f", this client {sum(os.times()[:2]) - client_before:.1f}")
        web = stack.peak_rss()["web"]
        print(f"peak RSS of the web processes (MiB): {', '.join(f'{kib / 1024:.0f}' for kib in web)}; "
              f"load average {os.getloadavg()[0]:.1f}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
