"""The proposal pipeline through real Celery worker processes on Redis and PostgreSQL."""

import signal
import time

import pytest

from governance.models import Decision, Proposal
from tests.builders import post_proposal
from tests.integration.workers import broker, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.integration


def test_a_real_worker_decides_a_posted_proposal(api, settings, tmp_path):
    with broker(settings):
        worker = start_worker(queues=["governance"], name="gov", log_dir=tmp_path)
        try:
            response = post_proposal(api)
            assert response.status_code == 202
            assert response.json()["decision"] is None  # answered before evaluation
            proposal_id = response.json()["id"]
            decision = wait_for(lambda: Decision.objects.filter(proposal_id=proposal_id).first(), what="a decision")
        finally:
            stop_worker(worker)
    assert decision.outcome == "block"  # trading is halted by default
    assert Proposal.objects.get(id=proposal_id).status == "blocked"


def test_a_worker_killed_mid_evaluation_strands_nothing(api, settings, tmp_path):
    with broker(settings):
        slow = start_worker(
            queues=["governance"], name="slow", log_dir=tmp_path, env={"CHRONOSX_EVALUATION_DELAY_SECONDS": "30"}
        )
        try:
            proposal_id = post_proposal(api).json()["id"]
            # The task is running once the worker logs it as received and the delay holds it inside its transaction.
            wait_for(lambda: "governance.evaluate" in (tmp_path / "worker-slow.log").read_text(), what="task received")
            time.sleep(2)
        finally:
            stop_worker(slow, sig=signal.SIGKILL)
        assert slow.returncode == -signal.SIGKILL
        proposal = Proposal.objects.get(id=proposal_id)
        assert proposal.status == "pending" and not Decision.objects.filter(proposal_id=proposal_id).exists()

        # A fresh worker with the periodic sweeper (beat) notices the stale proposal and re-enqueues it.
        rescuer = start_worker(
            queues=["governance"],
            name="rescuer",
            log_dir=tmp_path,
            beat=True,
            env={"CHRONOSX_SWEEP_AFTER_SECONDS": "2", "CHRONOSX_SWEEP_INTERVAL_SECONDS": "1"},
        )
        try:
            decision = wait_for(
                lambda: Decision.objects.filter(proposal_id=proposal_id).first(), timeout=60, what="the sweeper's decision"
            )
        finally:
            stop_worker(rescuer)
    assert decision.outcome == "block"
    assert Decision.objects.filter(proposal_id=proposal_id).count() == 1


def test_a_proposal_posted_while_the_broker_is_down_is_kept_and_decided_later(api, settings, tmp_path):
    from chronosx.celery import app
    from tests.integration.workers import _reset_pools

    with broker(settings) as url:
        app.conf.broker_url = "redis://127.0.0.1:9/0"  # nothing listens there
        _reset_pools(app)
        response = post_proposal(api)
        assert response.status_code == 202
        proposal_id = response.json()["id"]
        assert Proposal.objects.get(id=proposal_id).status == "pending"

        app.conf.broker_url = url
        _reset_pools(app)
        worker = start_worker(
            queues=["governance"],
            name="after-outage",
            log_dir=tmp_path,
            beat=True,
            env={"CHRONOSX_SWEEP_AFTER_SECONDS": "1", "CHRONOSX_SWEEP_INTERVAL_SECONDS": "1"},
        )
        try:
            decision = wait_for(lambda: Decision.objects.filter(proposal_id=proposal_id).first(), timeout=60, what="a decision")
        finally:
            stop_worker(worker)
    assert decision.outcome == "block"
