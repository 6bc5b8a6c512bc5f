"""The MPC quorum with three real node worker processes on Redis and PostgreSQL, each
started with CHRONOSX_NODE=<node> and a key directory holding only its own key."""

import shutil
import signal

import pytest

from exchange.models import Order
from governance.models import Decision, NodeKey, Proposal, Vote, WorkerHeartbeat
from governance.selectors.controls import ruleset_current
from governance.selectors.quorum import quorum_certificate_verify, quorum_summary
from governance.services.rulesets import ruleset_new_draft, ruleset_publish
from governance.tasks import node_vote_task
from ledger.models import AuditEvent
from tests.builders import post_proposal
from tests.integration.workers import broker, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.integration

NODES = ("risk", "portfolio", "execution")
APPROVED = {"approved", "routed", "partially_filled", "filled"}
VOTE_TIMEOUT = 6


def node_key_dirs(tmp_path, node_key_dir):
    """One directory per node with only that node's key file (seed_demo made all three in node_key_dir)."""
    dirs = {}
    for node in NODES:
        dirs[node] = tmp_path / f"keys-{node}"
        dirs[node].mkdir()
        shutil.copy2(node_key_dir / f"{node}.key", dirs[node] / f"{node}.key")
    return dirs


def status(proposal_id):
    return Proposal.objects.get(id=proposal_id).status


def voters(proposal_id):
    return sorted(Vote.objects.filter(proposal_id=proposal_id).values_list("node", flat=True))


def test_three_node_processes_approve_with_two_and_expire_with_one(api, trading_enabled, settings, tmp_path, node_key_dir):
    draft = ruleset_new_draft(source=ruleset_current(), actor="test")
    draft.vote_timeout_seconds = str(VOTE_TIMEOUT)
    draft.save()
    ruleset_publish(ruleset=draft, actor="test")
    key_dirs = node_key_dirs(tmp_path, node_key_dir)
    no_keys = {"CHRONOSX_NODE_KEY_DIR": str(tmp_path / "no-keys")}

    with broker(settings):
        workers = {
            "governance": start_worker(
                queues=["governance"], name="gov", log_dir=tmp_path, beat=True,
                env={**no_keys, "CHRONOSX_SWEEP_INTERVAL_SECONDS": "1"},
            ),
            "router": start_worker(queues=["router"], name="router", log_dir=tmp_path, env=no_keys),
        }
        for node in NODES:
            workers[node] = start_worker(
                queues=[node], name=node, log_dir=tmp_path,
                env={"CHRONOSX_NODE": node, "CHRONOSX_NODE_KEY_DIR": str(key_dirs[node])},
            )
        try:
            # Each node process beats with its own key once it is ready.
            wait_for(lambda: WorkerHeartbeat.objects.filter(kind__in=NODES).count() == 3, timeout=60, what="three node heartbeats")
            registered = {k.node: k.key_id for k in NodeKey.objects.all()}
            assert {hb.kind: hb.key_id for hb in WorkerHeartbeat.objects.filter(kind__in=NODES)} == registered

            # 1. All three up: approved, three verifying signatures, one order.
            first = post_proposal(api).json()["id"]
            wait_for(lambda: len(voters(first)) == 3, timeout=30, what="three votes")
            assert status(first) in APPROVED
            summary = quorum_summary(proposal=Proposal.objects.get(id=first))
            assert (summary["approvals"], summary["met"]) == (3, True)
            assert all(v["verified"] and v["key_id"] == registered[v["node"]] for v in summary["votes"])
            assert quorum_certificate_verify(proposal_id=first)[0] is True
            wait_for(lambda: Order.objects.filter(proposal_id=first).exists(), timeout=30, what="the routed order")

            # 2. Execution node killed: risk and portfolio still carry it.
            stop_worker(workers["execution"], sig=signal.SIGKILL)
            second = post_proposal(api).json()["id"]
            wait_for(lambda: status(second) in APPROVED, timeout=30, what="approval by two nodes")
            assert voters(second) == ["portfolio", "risk"]
            assert quorum_certificate_verify(proposal_id=second)[0] is True
            wait_for(lambda: Order.objects.filter(proposal_id=second).exists(), timeout=30, what="the routed order")

            # 3. Portfolio killed too: one approval is no quorum; expired at the deadline, nothing routed.
            stop_worker(workers["portfolio"], sig=signal.SIGKILL)
            third = post_proposal(api).json()["id"]
            wait_for(lambda: voters(third) == ["risk"], timeout=30, what="the risk vote")
            # The risk node will not sign as portfolio, even when handed portfolio's task.
            node_vote_task.apply_async(args=[third, "portfolio"], queue="risk")
            wait_for(
                lambda: AuditEvent.objects.filter(proposal_id=third, kind="vote.refused").exists(),
                timeout=30, what="the risk node's refusal",
            )
            assert "this process is node 'risk'; it never loads or signs as 'portfolio'" in (
                AuditEvent.objects.get(proposal_id=third, kind="vote.refused").payload
            )
            wait_for(lambda: status(third) == "expired", timeout=VOTE_TIMEOUT + 20, what="expiry")
            proposal = Proposal.objects.get(id=third)
            decided_at = Decision.objects.get(proposal_id=third).decided_at
            assert (proposal.status_changed_at - decided_at).total_seconds() >= VOTE_TIMEOUT
            assert voters(third) == ["risk"]
            assert quorum_certificate_verify(proposal_id=proposal.id)[0] is False
            assert not Order.objects.filter(proposal_id=third).exists()
        finally:
            for worker in workers.values():
                stop_worker(worker)
