"""Governance's Celery tasks: the evaluate and vote stages, the sweeper, impact replays, and
the heartbeats of governance's kinds of worker. Tasks take ids, re-fetch, and call a service."""

import threading
import time
from functools import partial

from celery import shared_task
from django.conf import settings
from django.db import connections

from chronosx import pipeline, workers
from chronosx.background import background_start
from governance.checkpoints import checkpoint_beat
from governance.models import Node, WorkerKind
from governance.nodes import node_beat, node_vote
from governance.services.alerts import alert_deliver, alert_retry_delay
from governance.services.evaluation import proposal_evaluate
from governance.services.heartbeats import worker_heartbeat
from governance.services.impact import impact_run
from governance.services.sweep import proposals_sweep


@shared_task(name="governance.evaluate", acks_late=True)
def proposal_evaluate_task(proposal_id: str):
    proposal_evaluate(proposal_id=proposal_id)


@shared_task(name="governance.vote", acks_late=True)
def node_vote_task(proposal_id: str, node: str):
    """Sent to the node's own queue (queue=node); only that node's worker holds the key to sign it."""
    vote = node_vote(proposal_id=proposal_id, node=node)
    return None if vote is None else vote.verdict


@shared_task(name="governance.sweep")
def proposals_sweep_task():
    return proposals_sweep()


@shared_task(name="governance.impact_replay", acks_late=True)
def impact_replay_task(report_id: int):
    report = impact_run(report_id=report_id)
    return None if report is None else report.status


def impact_replay_start(report_id: int) -> None:
    """Run a queued impact report once the transaction that made it commits (chronosx.background)."""
    background_start(task=impact_replay_task, job_id=report_id, name="impact")


@shared_task(name="governance.alert", bind=True, acks_late=True, max_retries=None)
def alert_deliver_task(self, alert_text: str, channel: str):
    """One channel of one alert; a failure is retried with backoff until the last attempt."""
    attempt = self.request.retries + 1
    final = attempt >= settings.CHRONOSX_ALERT_ATTEMPTS
    if not alert_deliver(alert_text=alert_text, channel=channel, attempt=attempt, final=final) and not final:
        raise self.retry(countdown=alert_retry_delay(attempt))
    return channel


def _alert_on_thread(alert_text: str, channel: str) -> None:
    try:
        attempts = settings.CHRONOSX_ALERT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if alert_deliver(alert_text=alert_text, channel=channel, attempt=attempt, final=attempt >= attempts):
                return
            if attempt < attempts:
                time.sleep(alert_retry_delay(attempt))
    finally:
        connections.close_all()  # this thread's connections


def alert_start(alert_text: str, channel: str) -> None:
    """Deliver an alert (called after the commit that raised it): on the governance queue, with
    Celery's retries; with no broker (the embedded default) on a thread of this process, which
    retries with the same backoff, so the request that raised it never waits on a receiver."""
    if settings.EMBEDDED_TASKS:
        threading.Thread(target=_alert_on_thread, args=(alert_text, channel), name="alert", daemon=True).start()
    else:
        alert_deliver_task.apply_async(args=[alert_text, channel], queue="governance")


pipeline.register(pipeline.EVALUATE, proposal_evaluate_task, queue="governance")
pipeline.register(pipeline.VOTE, node_vote_task)
pipeline.register(pipeline.ALERT, alert_deliver_task, queue="governance", start=alert_start)

workers.on_beat(WorkerKind.GOVERNANCE)(partial(worker_heartbeat, kind=WorkerKind.GOVERNANCE))
workers.on_beat(WorkerKind.SCHEDULER)(partial(worker_heartbeat, kind=WorkerKind.SCHEDULER))
for _node in Node.values:
    workers.on_beat(_node)(partial(node_beat, _node))
    workers.on_beat(_node)(partial(checkpoint_beat, _node))  # signs the audit chain's head once per interval
