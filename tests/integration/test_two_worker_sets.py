"""Past one machine: a second set of workers (governance, the three nodes, the router) with other
host names, on the same PostgreSQL and Redis, shares the work with the first; nothing is done
twice; stopping either set while proposals are in flight loses none of them (docs/scaling.md)."""

import shutil
import signal
import sys
from collections import Counter

import pytest

from exchange.models import Order
from governance.models import Decision, Proposal, Vote
from ledger.models import Fill
from tests.builders import post_proposal
from tests.integration.workers import (
    broker, celery_worker_argv, database_url, log_tail, process_env, redis_url, spawn, stop_worker, wait_for,
)

pytestmark = pytest.mark.integration

NODES = ("risk", "portfolio", "execution")
QUEUES = ("governance", *NODES, "router")
FAST_SWEEP = {"CHRONOSX_SWEEP_AFTER_SECONDS": "2", "CHRONOSX_SWEEP_INTERVAL_SECONDS": "1"}


def start_set(label, tmp_path, node_key_dir) -> dict:
    """One worker per queue, named QUEUE@host-LABEL; each node with a key folder holding its own key only."""
    workers = {}
    for queue in QUEUES:
        env = {**FAST_SWEEP, "CHRONOSX_NODE_KEY_DIR": str(tmp_path / "no-keys")}
        if queue in NODES:
            keys = tmp_path / f"keys-{queue}-{label}"
            keys.mkdir(exist_ok=True)
            shutil.copy2(node_key_dir / f"{queue}.key", keys / f"{queue}.key")
            env.update(CHRONOSX_NODE=queue, CHRONOSX_NODE_KEY_DIR=str(keys))
        argv = celery_worker_argv(queues=[queue], name=queue)
        argv[argv.index("-n") + 1] = f"{queue}@host-{label}"
        workers[queue] = spawn(
            argv, env=process_env(DATABASE_URL=database_url(), CELERY_BROKER_URL=redis_url(), **env),
            log_path=tmp_path / f"{queue}-{label}.log",
        )
    for queue in QUEUES:
        wait_for(lambda: "ready." in (tmp_path / f"{queue}-{label}.log").read_text(), timeout=120,
                 what=f"{queue}@host-{label} to be ready")
    return workers


def stop_set(workers):
    for proc in workers.values():
        stop_worker(proc, sig=signal.SIGTERM, timeout=60)


def tasks_done(tmp_path, label) -> int:
    return sum((tmp_path / f"{queue}-{label}.log").read_text().count("] succeeded in") for queue in QUEUES)


def post_many(api, n) -> list[str]:
    ids = []
    for _ in range(n):
        response = post_proposal(api)
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    return ids


def all_filled(ids, timeout=120.0):
    def filled():
        return Proposal.objects.filter(id__in=ids, status="filled").count() == len(ids)

    wait_for(filled, timeout=timeout, interval=0.5, what=f"{len(ids)} proposals to be filled")


@pytest.mark.timeout(600)  # sixteen worker processes started on a shared machine
def test_a_second_set_of_workers_shares_the_work_does_nothing_twice_and_either_set_can_stop(
    api, trading_enabled, settings, tmp_path, node_key_dir
):
    with broker(settings):
        beat = spawn([sys.executable, "-m", "celery", "-A", "chronosx", "beat", "-l", "INFO",
                      "--schedule", str(tmp_path / "beat-schedule")],
                     env=process_env(DATABASE_URL=database_url(), CELERY_BROKER_URL=redis_url(), **FAST_SWEEP),
                     log_path=tmp_path / "beat.log")
        sets = {}
        try:
            sets["a"] = start_set("a", tmp_path, node_key_dir)
            sets["b"] = start_set("b", tmp_path, node_key_dir)

            # Shared: both sets take part.
            first = post_many(api, 12)
            all_filled(first)
            assert tasks_done(tmp_path, "a") > 0 and tasks_done(tmp_path, "b") > 0

            # Either set stops while proposals are in flight: the other finishes them.
            second = post_many(api, 6)
            stop_set(sets.pop("a"))
            all_filled(second)
            sets["a"] = start_set("a2", tmp_path, node_key_dir)
            third = post_many(api, 6)
            stop_set(sets.pop("b"))
            all_filled(third)
        except AssertionError:
            logs = [log_tail(path, 20) for path in sorted(tmp_path.glob("*.log"))]
            raise AssertionError("\n".join(logs)) from None
        finally:
            for workers in sets.values():
                stop_set(workers)
            stop_worker(beat)

    # Nothing twice: one decision, one order and one fill per proposal; each approved by a quorum.
    # Three votes each, except that a stop may cost one proposal its third: the votes are asked for
    # after the decision commits, and the stop's SIGTERM reaches the stopped set's pool child too,
    # which can die between that commit and its last ask (one governance child a set, so one
    # proposal a stop at most). The sweeper asks a missing node again only while the proposal still
    # needs its vote.
    ids = first + second + third
    assert Decision.objects.filter(proposal_id__in=ids).count() == len(ids)
    votes = Counter(str(p) for p in Vote.objects.filter(proposal_id__in=ids).values_list("proposal_id", flat=True))
    approvals = Counter(
        str(p) for p in Vote.objects.filter(proposal_id__in=ids, verdict="approve").values_list("proposal_id", flat=True)
    )
    assert all(approvals[p] >= 2 for p in ids)
    short = [p for p in ids if votes[p] != 3]
    assert all(votes[p] == 3 for p in first) and len(short) <= 2 and all(votes[p] == 2 for p in short)
    assert Order.objects.filter(proposal_id__in=ids).count() == len(ids)
    assert Fill.objects.filter(order__proposal_id__in=ids).count() == len(ids)
