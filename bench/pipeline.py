"""Drive the real stack open-loop at fixed rates and print what each stage costs.

    python bench/pipeline.py [--rates 2,10,20] [--duration 20] [--web-workers 2] [--max-pending N] [--keep]
    python bench/pipeline.py --web-server gunicorn   # the web tier as WSGI sync workers instead
    python bench/pipeline.py --embedded [--rates 5,20,50]

It starts its own stack on this machine, as the README's production stack runs it:
PostgreSQL and Redis (scripts/services-up), a fresh database, the ASGI server, the
governance worker, beat, the audit sequencer, the three MPC node workers (each with only its own key) and the
router on the sandbox venue. For each rate it sends proposals at that fixed rate for the
duration without waiting for answers (open loop: a slow answer does not slow the sender),
then waits up to 30 s for every accepted proposal to be final. It prints

- accepted/s and the status codes of the POSTs, and POST latency p50/p95/p99 (client side);
- from the server's own timestamps: received→decided, received→approved (quorum met, three
  signed votes asked for) and received→filled (sandbox), p50/p95/p99;
- how many were lost (accepted, then missing) or still pending after the wait;
- CPU seconds each role used during the rate's load and wait (prefork children included),
  PostgreSQL's and Redis's server processes (those that exited too), this load generator's,
  and the whole machine's, and so CPU ms per accepted proposal;
- every process's peak RSS (VmHWM), prefork children included.

With --embedded it runs the README's embedded default instead (`scripts/run`: SQLite in a folder
of its own, no broker, every stage inside one uvicorn process) and needs no service.

Loopback only; the database it creates is dropped at the end unless --keep.
"""

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
FINAL = {"blocked", "expired", "filled", "rejected", "cancelled"}
NODES = ("risk", "portfolio", "execution")

# A ruleset that lets a long, fast run through: the limits are far above what it sends.
BENCH_RULESET = """
from governance.selectors.controls import ruleset_current
from governance.services.rulesets import ruleset_new_draft, ruleset_publish
draft = ruleset_new_draft(source=ruleset_current(), actor="bench")
draft.max_proposals_per_minute = 1000000
draft.max_open_positions = 100000
draft.default_strategy_budget = draft.max_gross_exposure = "1000000000"
draft.save()
for limit in draft.asset_limits.all():
    limit.max_position_quantity, limit.max_exposure = "1000000", "1000000000"
    limit.save()
for budget in draft.strategy_budgets.all():
    budget.max_exposure = "1000000000"
    budget.save()
ruleset_publish(ruleset=draft, actor="bench")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(values) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def at(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"p50 {at(0.50):.1f} / p95 {at(0.95):.1f} / p99 {at(0.99):.1f} ms"


# --- the stack ---------------------------------------------------------------------------


def services_env() -> dict:
    """The owner role's DATABASE_URL and CHRONOSX_TEST_REDIS_URL: the environment's when both
    are set (the services are already up), else what scripts/services-up starts and prints."""
    if os.environ.get("DATABASE_URL") and os.environ.get("CHRONOSX_TEST_REDIS_URL"):
        return {name: os.environ[name] for name in ("DATABASE_URL", "CHRONOSX_TEST_REDIS_URL")}
    services = subprocess.run([str(ROOT / "scripts/services-up")], capture_output=True, text=True, check=True)
    return dict(
        line.removeprefix("export ").split("=", 1) for line in services.stdout.splitlines() if line.startswith("export ")
    )


class Stack:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chronosx-bench-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.embedded = getattr(args, "embedded", False)  # bench/stream.py has no such option
        if self.embedded:
            self._embedded_env()
            return
        exported = services_env()
        owner_url = exported["DATABASE_URL"]
        self.database = f"bench_{uuid.uuid4().hex[:8]}"
        # CREATE and DROP DATABASE from the maintenance database: the one in the URL may not exist.
        self.admin_url = owner_url.rsplit("/", 1)[0] + "/postgres"
        self.url = owner_url.rsplit("/", 1)[0] + "/" + self.database
        redis = exported["CHRONOSX_TEST_REDIS_URL"].rstrip("/") + "/9"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CHRONOSX_", "DATABASE_", "CELERY_", "WEEX_"))},
            "DATABASE_URL": self.url,
            "CELERY_BROKER_URL": redis,
            "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "CHRONOSX_NODE_KEY_DIR": str(self.tmp / "keys"),
            "PYTHONUNBUFFERED": "1",
        }
        if getattr(args, "max_pending", None) is not None:  # bench/stream.py has no such option
            self.env["CHRONOSX_MAX_PENDING_PROPOSALS"] = str(args.max_pending)
        self.env.update(_settings_given(args))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def _embedded_env(self):
        """The README's embedded default (scripts/run): SQLite under a var folder of its own,
        no broker, one uvicorn process running every stage in-process."""
        self.database = None
        self.url = None
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CHRONOSX_", "DATABASE_", "CELERY_", "WEEX_"))},
            "CHRONOSX_VAR_DIR": str(self.tmp),
            "CHRONOSX_NODE_KEY_DIR": str(self.tmp / "keys"),
            "PYTHONUNBUFFERED": "1",
        }
        if self.args.max_pending is not None:
            self.env["CHRONOSX_MAX_PENDING_PROPOSALS"] = str(self.args.max_pending)
        self.env.update(_settings_given(self.args))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def manage(self, *args, env=None) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env or self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def _psql(self, sql):
        subprocess.run(["psql", self.admin_url, "-qc", sql], check=True, capture_output=True)

    def start(self):
        if not self.embedded:
            import redis

            redis.Redis.from_url(self.env["CELERY_BROKER_URL"]).flushdb()
            self._psql(f"CREATE DATABASE {self.database}")
        self.manage("migrate", "--noinput", "-v0")
        self.manage("seed_demo")
        self.manage("shell", "-v0", "-c", BENCH_RULESET)
        self.manage("trading", "enable", "--reason", "benchmark", "--user", "bench")
        self.token = self.manage("create_agent", f"bench-{uuid.uuid4().hex[:6]}", "--strategy", "demo").splitlines()[-1]
        uvicorn = [sys.executable, "-m", "uvicorn", "chronosx.asgi:application", "--host", "127.0.0.1",
                   "--port", str(self.port), "--no-access-log", "--log-level", "warning"]
        if self.embedded:
            self.spawn("web", uvicorn, {})
            self._wait_healthy()
            return
        for node in NODES:
            folder = self.tmp / f"keys-{node}"
            folder.mkdir()
            shutil.copy2(self.tmp / "keys" / f"{node}.key", folder / f"{node}.key")
        no_keys = {"CHRONOSX_NODE_KEY_DIR": str(self.tmp / "no-keys")}
        celery = [sys.executable, "-m", "celery", "-A", "chronosx"]
        worker = [*celery, "worker", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        # As scripts/up: the governance worker a prefork pool, each node and the router one task
        # at a time in its own process (solo), unless --pool prefork asks for a pool of --concurrency.
        pool = getattr(self.args, "pool", "prefork")
        single = ["-P", "solo"] if pool == "solo" else ["-P", "prefork", "-c", str(self.args.concurrency)]
        web = [*uvicorn, "--workers", str(self.args.web_workers)]
        if self.args.web_server == "gunicorn":
            # The WSGI layout, measured beside the ASGI one; not the product's (its stream and
            # `Prefer: wait` hold requests open, which sync workers cannot do many of).
            web = [sys.executable, "-m", "gunicorn", "chronosx.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                   "--workers", str(self.args.web_workers), "--log-level", "warning"]
        self.spawn("web", web, no_keys)
        self.spawn("governance", [*worker, "-Q", "governance", "-n", "governance@%h", "-c", str(self.args.concurrency)],
                   no_keys)
        self.spawn("beat", [*celery, "beat", "-l", "WARNING", "-s", str(self.tmp / "beat-schedule")], no_keys)
        if not getattr(self.args, "without_sequencer", False):
            self.spawn("sequencer", [sys.executable, "manage.py", "audit_sequencer"], no_keys)
        for node in NODES:
            self.spawn(node, [*worker, "-Q", node, "-n", f"{node}@%h", *single],
                       {"CHRONOSX_NODE": node, "CHRONOSX_NODE_KEY_DIR": str(self.tmp / f"keys-{node}")})
        self.spawn("router", [*worker, "-Q", "router", "-n", "router@%h", *single], no_keys)
        self._wait_healthy()

    def _wait_healthy(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{self.base}/api/v1/health/", timeout=2).json()
                if health["status"] == "ok":
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        raise SystemExit(f"the stack did not become healthy; logs in {self.tmp}")

    def spawn(self, name, argv, extra):
        log = open(self.tmp / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def peak_rss(self) -> dict[str, list[int]]:
        """Peak RSS (KiB) of each process and its descendants, by role."""
        return {name: [rss for rss in (self._hwm(pid) for pid in pids) if rss] for name, pids in self.pids().items()}

    def pids(self) -> dict[str, list[int]]:
        """Each role's process and its descendants."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        out = {}
        for name, proc in self.procs.items():
            pids, todo = [], [proc.pid]
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo.extend(children.get(pid, []))
            out[name] = pids
        return out

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each role (its live processes), PostgreSQL's and Redis's (those exited included), and the machine."""
        out = {name: sum(map(_cpu_of, pids)) for name, pids in self.pids().items()}
        for label, command in (("postgresql", "postgres"), ("redis", "redis-server")):
            # With the processes that have exited: a server process per connection used to come and go.
            out[label] = sum(_cpu_of(int(stat.parent.name), with_exited_children=True)
                             for stat in Path("/proc").glob("[0-9]*/stat") if _command_of(stat) == command)
        out["this client"] = _cpu_of(os.getpid())
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        idle = int(fields[3]) + int(fields[4])
        out["machine (busy)"] = (sum(map(int, fields[:8])) - idle) / CLOCK_TICKS
        return out

    @staticmethod
    def _hwm(pid) -> int | None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def stop(self):
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if not self.args.keep:
            if self.database:
                self._psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            shutil.rmtree(self.tmp, ignore_errors=True)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _command_of(stat: Path) -> str:
    try:
        return stat.read_text().split("(", 1)[1].split(")", 1)[0]
    except (OSError, IndexError):
        return ""


def _cpu_of(pid: int, *, with_exited_children: bool = False) -> float:
    """User and system CPU seconds of one process (0 once it is gone), and with
    `with_exited_children` those of its children that have exited and been waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12])
    if with_exited_children:
        used += int(fields[13]) + int(fields[14])
    return used / CLOCK_TICKS


# --- load and measurement ----------------------------------------------------------------


def body() -> str:
    return json.dumps({
        "strategy": "demo", "symbol": "BTCUSDT", "side": "buy", "quantity": "0.0010", "order_type": "limit",
        "limit_price": "65000", "reference_price": "65000", "expected_slippage_bps": 1, "confidence": 0.95,
        "signal_time": datetime.now(timezone.utc).isoformat(),
    })


def run_rate(stack: Stack, rate: float, duration: float) -> dict:
    """Send `rate` proposals a second for `duration` seconds, open loop."""
    local = threading.local()
    results, lock = [], threading.Lock()

    def post():
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.perf_counter()
        try:
            response = session.post(
                f"{stack.base}/api/v1/proposals/", data=body(), timeout=30,
                headers={"Authorization": f"Token {stack.token}", "Content-Type": "application/json",
                         "Idempotency-Key": f"bench-{uuid.uuid4().hex}"},
            )
            code, proposal_id = response.status_code, response.json().get("id") if response.status_code < 300 else None
        except requests.RequestException as exc:
            code, proposal_id = type(exc).__name__, None
        with lock:
            results.append((code, (time.perf_counter() - started) * 1000, proposal_id))

    total = int(rate * duration)
    with ThreadPoolExecutor(max_workers=min(256, max(8, int(rate * 2)))) as pool:
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(post)
    sent_for = time.perf_counter() - start
    accepted = [proposal_id for code, _, proposal_id in results if proposal_id]
    return {"results": results, "accepted": accepted, "sent_for": sent_for}


def stage_latencies(proposal_ids, wait_seconds=30) -> dict:
    """Server-side stage times of these proposals, from the database, after waiting for them to be final."""
    from django.db.models import Min

    from governance.models import Proposal
    from ledger.models import AuditEvent

    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        open_ = Proposal.objects.filter(id__in=proposal_ids).exclude(status__in=FINAL).count()
        if not open_:
            break
        time.sleep(0.5)
    rows = {p.id: p for p in Proposal.objects.filter(id__in=proposal_ids).select_related("decision")}
    approved = dict(
        AuditEvent.objects.filter(proposal_id__in=proposal_ids, kind="quorum.met")
        .values_list("proposal_id").annotate(at=Min("created_at"))
    )
    filled = dict(
        AuditEvent.objects.filter(proposal_id__in=proposal_ids, kind="proposal.status", payload__contains='"to":"filled"')
        .values_list("proposal_id").annotate(at=Min("created_at"))
    )

    def since_received(times):
        return [(at - rows[pid].received_at).total_seconds() * 1000 for pid, at in times.items() if pid in rows]

    decided = {pid: p.decision.decided_at for pid, p in rows.items() if hasattr(p, "decision")}
    return {
        "lost": len(proposal_ids) - len(rows),
        "pending": sum(1 for p in rows.values() if p.status not in FINAL),
        "statuses": Counter(p.status for p in rows.values()),
        "decided": since_received(decided),
        "approved": since_received(approved),
        "filled": since_received(filled),
    }


def django_setup_for(stack) -> None:
    """This process reads the stack's database through Django (the server's own timestamps)."""
    if stack.embedded:
        os.environ.pop("DATABASE_URL", None)
        os.environ.update(CHRONOSX_VAR_DIR=stack.env["CHRONOSX_VAR_DIR"])
    else:
        os.environ.update(DATABASE_URL=stack.url, DJANGO_SECRET_KEY=stack.env["DJANGO_SECRET_KEY"])
    os.environ.update(DJANGO_SETTINGS_MODULE="chronosx.settings", CHRONOSX_EMBEDDED_LOOP="0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _settings_given(args) -> dict:
    """--setting CHRONOSX_NAME=VALUE pairs. The stack is otherwise started without the caller's
    CHRONOSX_ variables, so a figure never depends on what the shell happened to export."""
    given = {}
    for pair in getattr(args, "setting", None) or []:  # bench/stream.py has no such option
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("CHRONOSX_"):
            raise SystemExit(f"--setting {pair!r}: expected CHRONOSX_NAME=VALUE")
        given[name] = value
    return given


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="2,10,20", help="proposals per second, comma-separated")
    parser.add_argument("--duration", type=float, default=20, help="seconds of load per rate")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-server", default="uvicorn", choices=["uvicorn", "gunicorn"],
                        help="uvicorn (ASGI, the product's) or gunicorn sync workers (WSGI, for comparison: "
                             "pip install gunicorn==27.0.1, a yardstick, not a dependency)")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="the governance worker's prefork processes (scripts/up: 2), and with --pool prefork each other worker's")
    parser.add_argument("--pool", default="solo", choices=["prefork", "solo"],
                        help="the nodes' and the router's pool (scripts/up: solo, each runs its tasks itself)")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument("--max-pending", type=int, help="the stack's CHRONOSX_MAX_PENDING_PROPOSALS (default: its own)")
    parser.add_argument("--setting", action="append", default=[], metavar="CHRONOSX_NAME=VALUE",
                        help="a setting for every process of the stack, to compare one against its default (repeatable)")
    parser.add_argument("--embedded", action="store_true",
                        help="the embedded default instead (SQLite, no broker, one uvicorn process running every stage)")
    args = parser.parse_args()
    if args.web_server == "gunicorn" and importlib.util.find_spec("gunicorn") is None:
        parser.error("--web-server gunicorn needs gunicorn: pip install gunicorn==27.0.1")
    if args.web_server == "gunicorn" and args.embedded:
        parser.error("the embedded default is one uvicorn process: --web-server applies to the stack")

    stack = Stack(args)
    try:
        stack.start()
        django_setup_for(stack)
        if stack.embedded:
            print(f"embedded default up: SQLite, one uvicorn process, no broker; logs in {stack.tmp}")
        else:
            print(f"stack up: web workers {args.web_workers}, governance processes {args.concurrency}, "
                  f"nodes and router pool {args.pool}; logs in {stack.tmp}")
        for rate in [float(r) for r in args.rates.split(",")]:
            cpu_before = stack.cpu_seconds()
            load = run_rate(stack, rate, args.duration)
            stages = stage_latencies(load["accepted"])
            cpu_after = stack.cpu_seconds()
            codes = Counter(str(code) for code, _, _ in load["results"])
            posts = [ms for code, ms, _ in load["results"] if code == 202]
            print(f"\n== {rate:g}/s for {args.duration:g} s ({len(load['results'])} sent in {load['sent_for']:.1f} s)")
            print(f"accepted/s {len(load['accepted']) / load['sent_for']:.1f}; status codes {dict(codes)}")
            print(f"POST                 {percentiles(posts)}")
            print(f"received->decided    {percentiles(stages['decided'])}")
            print(f"received->approved   {percentiles(stages['approved'])}")
            print(f"received->filled     {percentiles(stages['filled'])}")
            print(f"lost {stages['lost']}, pending after 30 s {stages['pending']}; final {dict(stages['statuses'])}")
            accepted = max(1, len(load["accepted"]))
            print("CPU s (ms per accepted proposal): " + ", ".join(
                f"{name} {cpu_after[name] - cpu_before.get(name, 0):.1f} ({(cpu_after[name] - cpu_before.get(name, 0)) * 1000 / accepted:.0f})"
                for name in cpu_after))
        print("\npeak RSS (MiB) per process (children after the first):")
        for name, values in stack.peak_rss().items():
            print(f"  {name:11s} " + ", ".join(f"{v / 1024:.0f}" for v in values))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
