"""Chaos: the whole production stack as real processes (uvicorn, Celery beat, the governance
worker, the three MPC node workers, the router on the sandbox venue) on a private PostgreSQL
and a private Redis. While an agent posts proposals, the test plays systemd: it SIGKILLs
random workers (each started again about a second later), restarts Redis once (between the
kills, with every worker up) and PostgreSQL once (after them, with every worker up).
Afterwards every accepted proposal is final, nothing was voted or ordered twice, no order
lacks its quorum, the audit chain verifies, every decision replays identically, no process
ended that the test did not kill, and the workers that saw the PostgreSQL restart are still
the same processes, beating again.

Nothing here touches the pytest-django test database or the shared services: setup runs
`manage.py` in subprocesses against the private database, results are read with psycopg.
"""

import os
import random
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from datetime import timezone as dt_timezone

import psycopg
import pytest
import redis
import requests

from tests.builders import proposal_body
from tests.integration.services import free_port, private_postgres, private_redis
from tests.integration.workers import (
    Supervised,
    celery_worker_argv,
    log_tail,
    manage,
    process_env,
    stop_all,
    wait_for,
)

pytestmark = pytest.mark.integration

NODES = ("risk", "portfolio", "execution")
WORKER_KINDS = ("governance", "scheduler", *NODES, "router")
FINAL = ("blocked", "expired", "filled", "rejected", "cancelled")

KILLS = 32  # SIGKILLs of random workers, half before the Redis restart, half after it
# One kill per this many proposals accepted, at most one every KILL_EVERY seconds: the faults are
# spread over about KILLS * PROPOSALS_PER_KILL proposals however fast the machine runs them.
PROPOSALS_PER_KILL = 5
KILL_EVERY = 1.7
RESTART_AFTER = 1.0  # the supervisor starts a killed worker again after this long
# A worker is killed only once it is ready (a Celery worker takes several seconds to start on
# two busy cores), and up this long: killed over and over while starting, one kind of worker
# would be away for most of the run and the backlog would outlast SETTLE_TIMEOUT.
MIN_UPTIME = 3.0  # after it logged that it is ready
DOWN_SECONDS = 2  # how long Redis, and PostgreSQL, stay away when restarted
# Proposals per second at most while faults are injected: what two cores carry through the whole
# pipeline (evaluation, three signed votes, routing, fills, the audit chain) with workers restarting.
POSTS_PER_SECOND = 2.2
POSTERS = 2  # agents posting at once, each at its share of the rate, so slow answers slow it less
# The agents hold back while this many proposals are not final: a stack slowed down by the faults
# (or a busy machine) is then not buried under more work than it can finish within SETTLE_TIMEOUT.
MAX_IN_FLIGHT = 40
SETTLE_TIMEOUT = 150  # for every accepted proposal to become final once the faults stop
QUORUM = 2


@pytest.fixture(autouse=True)
def _committed():
    """Replaces the integration conftest's fixture: this test has no pytest-django database."""


def stack_env(pg, broker, key_dir) -> dict:
    env = process_env(
        DATABASE_URL=pg.url,
        CELERY_BROKER_URL=broker.url,
        REDIS_URL=broker.url,
        DJANGO_SECRET_KEY=f"chaos-{uuid.uuid4().hex}",
        CHRONOSX_NODE_KEY_DIR=str(key_dir),
        CHRONOSX_VENUE="sandbox",
        # Sweeps and reconciliation every 2 s, of what has waited 8 s. Not much more often: each round
        # costs its queue's worker time, and re-sends every proposal still stuck, whether or not the
        # last message for it is still queued. While a worker restarts on two busy cores its queue
        # then fills with copies that cost more than the work (sweeping every 1 s what waited 2 s:
        # ~900 routing messages for 170 proposals, and a backlog that outlived the settling time).
        CHRONOSX_SWEEP_INTERVAL_SECONDS="2",
        CHRONOSX_SWEEP_AFTER_SECONDS="8",
        CHRONOSX_ORDER_STALE_SECONDS="3",
        CHRONOSX_LOG_LEVEL="INFO",
    )
    # Only what this stack is given: no secret, database or broker of the test run's own.
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DJANGO_SECRET_KEY"):
        env.pop(f"{name}_FILE", None)
    env.pop("CHRONOSX_EVALUATION_DELAY_SECONDS", None)
    return env


class Stack:
    def __init__(self, tmp_path, env, key_dirs, no_keys, port):
        self.tmp_path, self.port = tmp_path, port
        self.url = f"http://127.0.0.1:{port}"
        self.workers = {}
        for kind in WORKER_KINDS:
            if kind == "scheduler":
                argv = [sys.executable, "-m", "celery", "-A", "chronosx", "beat", "-l", "INFO",
                        "--schedule", str(tmp_path / "celerybeat-schedule"), "--pidfile="]
            else:
                # Two pool processes, as `celery worker` starts on two cores: a busy worker is then
                # also waiting for more when the broker goes (what celery/kombu 5.7.0 died of).
                argv = celery_worker_argv(queues=[kind], name=kind, concurrency=2)
            worker_env = {**env, "CHRONOSX_NODE_KEY_DIR": str(key_dirs.get(kind, no_keys))}
            if kind in NODES:
                worker_env["CHRONOSX_NODE"] = kind
            self.workers[kind] = Supervised(
                kind, argv, env=worker_env, log_path=tmp_path / f"{kind}.log",
                ready_line="beat: Starting..." if kind == "scheduler" else " ready.",
            )
        web_argv = [sys.executable, "-m", "uvicorn", "chronosx.asgi:application", "--host", "127.0.0.1",
                    "--port", str(port), "--log-level", "warning"]
        self.web = Supervised("web", web_argv, env={**env, "CHRONOSX_NODE_KEY_DIR": str(no_keys)},
                              log_path=tmp_path / "web.log")

    def start(self):
        self.web.start()
        for worker in self.workers.values():
            worker.start()

    def stop(self):
        stop_all([*self.workers.values(), self.web], timeout=10)

    def health(self):
        try:
            return requests.get(f"{self.url}/api/v1/health/", timeout=3).json()
        except (requests.RequestException, ValueError):
            return None

    def all_beating(self):
        health = self.health()
        if not health:
            return False
        beating = {**health.get("workers", {}), **health.get("nodes", {})}
        return all(beating.get(kind, {}).get("alive") for kind in WORKER_KINDS)

    def assert_none_died(self):
        """No process ended that the test did not kill (the supervisor started it again, as systemd would)."""
        died = [
            f"{kind} (pid {pid}) exited with {code}; its last lines:\n{last_words}"
            for kind, process in {**self.workers, "web": self.web}.items()
            for pid, code, last_words in process.unexpected_exits
        ]
        assert not died, "processes ended that the test did not kill:\n" + "\n".join(died)

    def logs(self, *kinds, lines=40):
        processes = {**self.workers, "web": self.web}
        return "\n".join(log_tail(processes[k].log_path, lines) for k in kinds or processes)


class Backlog:
    """How many proposals are not final yet, read at most once a second (0 while the database is away)."""

    def __init__(self, pg_url):
        self.pg_url, self.value, self.read_at = pg_url, 0, 0.0
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            if time.monotonic() - self.read_at >= 1:
                self.read_at = time.monotonic()
                try:
                    self.value = query(self.pg_url, NOT_FINAL_COUNT_SQL, (list(FINAL),))[0][0]
                except psycopg.Error:
                    self.value = 0
            return self.value


class Poster(threading.Thread):
    """An agent posting proposals at a steady pace (its share of POSTS_PER_SECOND), holding back
    while MAX_IN_FLIGHT proposals are undecided; records every answer."""

    def __init__(self, url, token, backlog):
        super().__init__(daemon=True)
        self.url, self.token, self.backlog = url, token, backlog
        self.stop = threading.Event()
        self.accepted = []  # proposal ids answered 2xx
        self.refused = Counter()  # status code (or exception name) -> count

    def run(self):
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.token}"
        next_post = time.monotonic()
        while not self.stop.is_set():
            if self.backlog() >= MAX_IN_FLIGHT:
                self.stop.wait(0.5)
                continue
            try:
                response = session.post(
                    f"{self.url}/api/v1/proposals/", json=proposal_body(),
                    headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=10,
                )
                if 200 <= response.status_code < 300:
                    self.accepted.append(response.json()["id"])
                else:
                    self.refused[response.status_code] += 1
            except requests.RequestException as exc:
                self.refused[type(exc).__name__] += 1
            next_post = max(next_post + POSTERS / POSTS_PER_SECOND, time.monotonic())
            self.stop.wait(next_post - time.monotonic())


class Supervisor:
    """The test as systemd: starts a worker again RESTART_AFTER seconds after killing it, and
    at once when it died on its own (recorded in its unexpected_exits, which fails the test)."""

    def __init__(self, stack, rng, accepted):
        self.stack, self.rng, self.accepted = stack, rng, accepted
        self.pending = {}  # kind -> when it is started again
        self.kills = []

    def tick(self):
        now = time.monotonic()
        for kind, worker in self.stack.workers.items():
            if kind not in self.pending:
                worker.check()
            elif now >= self.pending[kind]:
                del self.pending[kind]
                worker.start()
        self.stack.web.check()

    def all_up(self) -> bool:
        """Every worker connected and ready, for a while: a restart of a service then hits all of them."""
        return not self.pending and all(w.ready() and w.uptime() >= MIN_UPTIME for w in self.stack.workers.values())

    def kill_some(self, count, timeout=180):
        """SIGKILL `count` random workers, among those ready and up long enough: one per
        PROPOSALS_PER_KILL proposals accepted, at most one every KILL_EVERY seconds."""
        target, next_kill = len(self.kills) + count, time.monotonic() + KILL_EVERY
        deadline = time.monotonic() + timeout
        while len(self.kills) < target:
            assert time.monotonic() < deadline, (
                f"{len(self.kills)} kills, {self.accepted()} proposals accepted after {timeout}s\n{self.stack.logs()}"
            )
            self.tick()
            if time.monotonic() >= next_kill and self.accepted() >= (len(self.kills) + 1) * PROPOSALS_PER_KILL:
                candidates = [
                    kind for kind, worker in self.stack.workers.items()
                    if kind not in self.pending and worker.ready() and worker.uptime() >= MIN_UPTIME
                ]
                if candidates:
                    kind = self.rng.choice(candidates)
                    self.stack.workers[kind].kill()
                    self.pending[kind] = time.monotonic() + RESTART_AFTER
                    self.kills.append(kind)
                    next_kill = time.monotonic() + KILL_EVERY
            time.sleep(0.1)

    def until_all_up(self, timeout=60):
        deadline = time.monotonic() + timeout
        while not self.all_up():
            assert time.monotonic() < deadline, f"workers not all up after {timeout}s\n{self.stack.logs()}"
            self.tick()
            time.sleep(0.1)

    def run(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.tick()
            time.sleep(0.1)


NOT_FINAL_COUNT_SQL = "SELECT count(*) FROM governance_proposal WHERE NOT (status = ANY(%s))"


def query(pg_url, sql, params=()):
    with psycopg.connect(pg_url, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def diagnosis(pg_url, broker_url) -> str:
    """What a stuck run looks like: the proposals that are not final, with their votes and orders,
    and how many messages wait in each queue."""
    stuck = query(
        pg_url,
        "SELECT p.status, count(*), min(p.status_changed_at), max(p.swept_at), "
        "count(o.id), string_agg(DISTINCT o.status, ','), avg((SELECT count(*) FROM governance_vote v "
        "WHERE v.proposal_id = p.id)) FROM governance_proposal p LEFT JOIN exchange_order o ON o.proposal_id = p.id "
        "WHERE NOT (p.status = ANY(%s)) GROUP BY p.status",
        (list(FINAL),),
    )
    client = redis.Redis.from_url(broker_url, socket_timeout=2)
    queues = {q: client.llen(q) for q in ("governance", *NODES, "router")}
    return (
        f"not final (status, count, oldest change, last swept, orders, order statuses, mean votes): {stuck}; "
        f"messages waiting per queue: {queues}, unacked: {client.hlen('unacked')}"
    )


# Under pytest.ini's 300 s a slow machine's run would be cut off while it stops its processes.
@pytest.mark.timeout(480)
def test_the_stack_survives_kills_and_restarts_of_redis_and_postgresql(tmp_path):
    started = time.monotonic()
    seed = int(os.environ.get("CHRONOSX_CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    print(f"chaos seed {seed} (CHRONOSX_CHAOS_SEED={seed} picks the same workers to kill)")
    with private_postgres() as pg, private_redis() as broker:
        all_keys, no_keys = tmp_path / "keys", tmp_path / "no-keys"
        no_keys.mkdir()
        env = stack_env(pg, broker, all_keys)
        manage("migrate", "--noinput", env=env)
        manage("seed_demo", env=env)
        manage("trading", "enable", "--reason", "chaos", env=env)
        token = manage("create_agent", "chaos", "--strategy", "demo", env=env).strip().splitlines()[-1]
        key_dirs = {}
        for node in NODES:  # each node process holds only its own key (and writes its own checkpoint there)
            key_dirs[node] = tmp_path / f"keys-{node}"
            key_dirs[node].mkdir()
            shutil.copy2(all_keys / f"{node}.key", key_dirs[node] / f"{node}.key")

        stack = Stack(tmp_path, env, key_dirs, no_keys, free_port())
        stack.start()
        backlog = Backlog(pg.url)
        posters = [Poster(stack.url, token, backlog) for _ in range(POSTERS)]
        try:
            try:
                wait_for(stack.all_beating, timeout=90, interval=0.5, what="every kind of worker to beat")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {stack.health()}\n{stack.logs()}") from None
            setup_seconds = time.monotonic() - started

            # --- faults, while the agent posts ---------------------------------------------
            for poster in posters:
                poster.start()
            window_start = time.monotonic()
            supervisor = Supervisor(stack, rng, accepted=lambda: sum(len(poster.accepted) for poster in posters))
            supervisor.kill_some(KILLS // 2)
            supervisor.until_all_up()
            broker.restart(down_seconds=DOWN_SECONDS)
            supervisor.kill_some(KILLS - KILLS // 2)
            supervisor.until_all_up()
            at_postgres_restart = {kind: w.proc.pid for kind, w in stack.workers.items()}
            postgres_restarted_at = datetime.now(dt_timezone.utc)
            pg.restart(down_seconds=DOWN_SECONDS)
            supervisor.run(5)  # the agent goes on posting while the stack finds the database again
            for poster in posters:
                poster.stop.set()
            for poster in posters:
                poster.join(timeout=15)
            kills = supervisor.kills
            fault_seconds = time.monotonic() - window_start
            stack.assert_none_died()

            # --- every accepted proposal becomes final, with no worker restarted by hand ------
            accepted = [proposal for poster in posters for proposal in poster.accepted]
            refused = sum((poster.refused for poster in posters), Counter())
            assert len(accepted) >= KILLS * PROPOSALS_PER_KILL, (len(accepted), dict(refused))
            not_final_sql = "SELECT id, status FROM governance_proposal WHERE NOT (status = ANY(%s))"

            def settled():
                supervisor.tick()
                return not query(pg.url, not_final_sql, (list(FINAL),))

            try:
                wait_for(settled, timeout=SETTLE_TIMEOUT, interval=1, what="every proposal to be final")
            except AssertionError:
                stuck = query(pg.url, not_final_sql + " ORDER BY received_at LIMIT 20", (list(FINAL),))
                raise AssertionError(
                    f"{len(query(pg.url, not_final_sql, (list(FINAL),)))} proposals are not final "
                    f"{SETTLE_TIMEOUT}s after the faults stopped, e.g. {stuck} (seed {seed})\n"
                    f"{diagnosis(pg.url, broker.url)}\n"
                    + stack.logs("governance", "scheduler", "router", lines=60)
                ) from None
            settle_seconds = time.monotonic() - window_start - fault_seconds
            # The heartbeat threads of the workers that saw the database go found it again.
            def silent():
                beats = dict(query(pg.url, "SELECT kind, last_heartbeat FROM governance_workerheartbeat"))
                return {k: beats.get(k) for k in WORKER_KINDS if not beats.get(k) or beats[k] <= postgres_restarted_at}

            try:
                wait_for(lambda: not silent(), timeout=30, interval=1, what="a heartbeat of every worker")
            except AssertionError:
                raise AssertionError(
                    f"no heartbeat since the PostgreSQL restart at {postgres_restarted_at}: {silent()}\n"
                    + stack.logs(*silent())
                ) from None

            # --- what the faults must not have caused -----------------------------------------
            stored = {row[0] for row in query(pg.url, "SELECT id::text FROM governance_proposal")}
            assert set(accepted) <= stored, "an accepted proposal was not stored"
            statuses = dict(query(pg.url, "SELECT status, count(*) FROM governance_proposal GROUP BY status"))
            double_votes = query(
                pg.url, "SELECT proposal_id, node, count(*) FROM governance_vote GROUP BY 1, 2 HAVING count(*) > 1"
            )
            double_orders = query(
                pg.url, "SELECT proposal_id, count(*) FROM exchange_order GROUP BY 1 HAVING count(*) > 1"
            )
            double_venue_orders = query(
                pg.url, "SELECT client_order_id, count(*) FROM exchange_sandboxorder GROUP BY 1 HAVING count(*) > 1"
            )
            orders_without_quorum = query(
                pg.url,
                "SELECT o.proposal_id, (SELECT count(*) FROM governance_vote v WHERE v.proposal_id = o.proposal_id "
                "AND v.verdict = 'approve') AS approvals FROM exchange_order o "
                "WHERE (SELECT count(*) FROM governance_vote v WHERE v.proposal_id = o.proposal_id "
                "AND v.verdict = 'approve') < %s",
                (QUORUM,),
            )
            orders = query(pg.url, "SELECT count(*) FROM exchange_order")[0][0]
            assert double_votes == [], f"a node voted twice: {double_votes}"
            assert double_orders == [], f"a proposal was ordered twice: {double_orders}"
            assert double_venue_orders == [], f"the venue got an order twice: {double_venue_orders}"
            assert orders_without_quorum == [], f"orders without {QUORUM} approving votes: {orders_without_quorum}"

            checkpoints = [arg for node in NODES for arg in ("--checkpoints", str(key_dirs[node]))]
            audit = manage("verify_audit", *checkpoints, env=env)
            assert "audit chain OK" in audit, audit
            replay = manage("replay_decision", "--all", env=env)
            assert "differing: 0" in replay, replay

            # --- no worker needed a manual restart ---------------------------------------------
            stack.assert_none_died()
            for kind, worker in stack.workers.items():
                assert worker.alive(), f"{kind} is not running\n{stack.logs(kind)}"
                # Nobody was killed after the PostgreSQL restart: every worker is the process that saw it.
                assert worker.proc.pid == at_postgres_restart[kind], f"{kind} was replaced\n{stack.logs(kind)}"
            assert stack.web.alive() and len(stack.web.pids) == 1, stack.logs("web")
            assert len(kills) >= 30 and broker.restarts == 1 and pg.restarts == 1

            print(
                f"\nchaos (seed {seed}): {len(kills)} SIGKILLs {dict(Counter(kills))}, 1 Redis and 1 PostgreSQL restart; "
                f"{len(accepted)} proposals accepted, refused {dict(refused)}; statuses {statuses}; "
                f"{orders} orders; {audit.splitlines()[0]}; {replay.strip().splitlines()[-1]}; "
                f"setup {setup_seconds:.0f}s, faults {fault_seconds:.0f}s, settled in {settle_seconds:.0f}s, "
                f"total {time.monotonic() - started:.0f}s"
            )
        finally:
            for poster in posters:
                poster.stop.set()
            stack.stop()
