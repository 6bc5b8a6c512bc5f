"""Force-execute through the real stack: three node worker processes on Redis and PostgreSQL,
each holding only its own key, verify the force record and sign over it; the router sends the
order for the quantity proposed."""

import io

import pytest
from django.core.management import call_command

from exchange.models import Order
from governance import digests, keys
from governance.models import ForceRequest, Proposal, Vote, WorkerHeartbeat
from governance.selectors.quorum import quorum_certificate_verify
from tests.builders import post_proposal, proposal_body, staff_member
from tests.integration.test_mpc_nodes import NODES, node_key_dirs
from tests.integration.workers import broker, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.integration


def test_three_node_processes_sign_over_the_force_record_and_the_order_is_sent(api, trading_enabled, settings, tmp_path, node_key_dir):
    staff_member("operator", "olga")
    staff_member("risk_officer", "rita")
    key_dirs = node_key_dirs(tmp_path, node_key_dir)
    no_keys = {"CHRONOSX_NODE_KEY_DIR": str(tmp_path / "no-keys")}

    # (broker() sets the Celery app's task_always_eager, which the Django setting of the same
    # name still overrides in this process: without this the votes would run here, keyless.)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with broker(settings):
        workers = {
            "governance": start_worker(queues=["governance"], name="gov", log_dir=tmp_path, env=no_keys),
            "router": start_worker(queues=["router"], name="router", log_dir=tmp_path, env=no_keys),
        }
        for node in NODES:
            workers[node] = start_worker(
                queues=[node], name=node, log_dir=tmp_path,
                env={"CHRONOSX_NODE": node, "CHRONOSX_NODE_KEY_DIR": str(key_dirs[node])},
            )
        try:
            wait_for(lambda: WorkerHeartbeat.objects.filter(kind__in=NODES).count() == 3, timeout=60, what="three node heartbeats")
            proposal_id = post_proposal(api, proposal_body(confidence=0.1)).json()["id"]
            wait_for(lambda: Proposal.objects.get(id=proposal_id).status == "blocked", timeout=30, what="the block")

            call_command("force", "request", proposal_id, "--reason", "desk call", "--user", "olga", stdout=io.StringIO())
            call_command("force", "approve", proposal_id, "--user", "rita", stdout=io.StringIO())
            record = ForceRequest.objects.get(proposal_id=proposal_id, status="approved")

            # (This process holds no key and is not embedded: every vote is a node worker's.)
            wait_for(lambda: Vote.objects.filter(proposal_id=proposal_id).count() == 3, timeout=30, what="three votes")
            wait_for(lambda: Order.objects.filter(proposal_id=proposal_id).exists(), timeout=30, what="the routed order")
            assert Order.objects.get(proposal_id=proposal_id).quantity == Proposal.objects.get(id=proposal_id).quantity
            assert quorum_certificate_verify(proposal_id=proposal_id)[0] is True
            for vote in Vote.objects.filter(proposal_id=proposal_id):
                assert vote.verdict == "approve" and vote.force_digest == record.digest
                _, public_key = keys.public_key_lookup(vote.key_id)
                message = digests.vote_message(
                    proposal_id=proposal_id, decision_digest=vote.decision_digest, node=vote.node,
                    verdict=vote.verdict, key_id=vote.key_id, force_digest=record.digest,
                )
                assert keys.signature_valid(public_key=public_key, message=message, signature=vote.signature)
        finally:
            for worker in workers.values():
                stop_worker(worker)
