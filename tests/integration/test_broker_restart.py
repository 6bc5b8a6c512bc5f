"""A worker survives its Redis broker restarting (`redis-cli shutdown nosave`, then a fresh
start) while it is busy, and consumes again once the broker is back.

The worker runs with two pool processes, as production does on two cores: one busy with an
evaluation (acks_late, so unacknowledged) and one free, so the worker is waiting on BRPOP for
more when the broker goes away. With celery/kombu 5.7.0 exactly that killed the worker on the
first restart ("Unrecoverable error: AttributeError('NoneType' object has no attribute
'hostname')"; see the comment on the pins in requirements.txt). Each restart is on a private
Redis (tests/integration/services.py): the shared one is other test runs' broker.
"""

import time

import pytest

from chronosx.celery import app
from governance.models import Decision
from tests.builders import post_proposal
from tests.integration.services import private_redis
from tests.integration.workers import (
    _reset_pools,
    broker,
    log_tail,
    start_worker,
    stop_worker,
    wait_for,
)

pytestmark = pytest.mark.integration

EVALUATION_SECONDS = 4  # each evaluation holds its pool process (and its unacked message) this long


def test_a_busy_worker_survives_two_redis_restarts_and_consumes_after_each(api, settings, tmp_path):
    with private_redis() as redis_server, broker(settings, url=redis_server.url):
        worker = start_worker(
            queues=["governance"], name="gov", log_dir=tmp_path, concurrency=2,
            env={
                "CELERY_BROKER_URL": redis_server.url,
                "CHRONOSX_EVALUATION_DELAY_SECONDS": str(EVALUATION_SECONDS),
            },
        )
        log = tmp_path / "worker-gov.log"

        def while_alive(predicate, restart):
            """`predicate`, failing at once (with the worker's log) if the worker has exited."""

            def check():
                if worker.poll() is not None:
                    raise AssertionError(
                        f"the worker exited ({worker.returncode}) at Redis restart {restart}\n{log_tail(log, 60)}"
                    )
                return predicate()

            return check

        def decided(proposal_id):
            return lambda: Decision.objects.filter(proposal_id=proposal_id).exists()

        def evaluations_received():
            return sum("governance.evaluate[" in line and "received" in line for line in log.read_text().splitlines())

        try:
            wait_for(while_alive(lambda: "ready." in log.read_text(), 0), timeout=60, what="the worker to start")
            for restart in (1, 2):
                received = evaluations_received()
                busy = post_proposal(api).json()["id"]
                wait_for(while_alive(lambda before=received: evaluations_received() > before, restart), timeout=30,
                         what="the evaluation to start")
                time.sleep(0.5)
                redis_server.restart(down_seconds=1)  # the evaluation is still running
                _reset_pools(app)  # this process's producers connect to the fresh server

                wait_for(while_alive(decided(busy), restart), timeout=30,
                         what="the evaluation under way at the restart to finish")
                # Redis came back empty: only a worker that reconnected and consumes again decides this one.
                after = post_proposal(api)
                assert after.status_code == 202, after.content
                wait_for(while_alive(decided(after.json()["id"]), restart), timeout=60,
                         what=f"a proposal sent after restart {restart} to be decided")
            time.sleep(1)  # past the worker's last log lines
            assert worker.poll() is None, log_tail(log, 60)
            assert "Unrecoverable error" not in log.read_text(), log_tail(log, 80)
        finally:
            stop_worker(worker)
