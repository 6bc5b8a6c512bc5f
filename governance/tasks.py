"""Governance's Celery tasks: the evaluate and vote stages, the sweeper, and the heartbeats
of governance's kinds of worker. Tasks take ids, re-fetch, and call a service."""

from functools import partial

from celery import shared_task

from chronosx import pipeline, workers
from governance.checkpoints import checkpoint_beat
from governance.models import Node, WorkerKind
from governance.nodes import node_beat, node_vote
from governance.services.evaluation import proposal_evaluate
from governance.services.heartbeats import worker_heartbeat
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


pipeline.register(pipeline.EVALUATE, proposal_evaluate_task, queue="governance")
pipeline.register(pipeline.VOTE, node_vote_task)

workers.on_beat(WorkerKind.GOVERNANCE)(partial(worker_heartbeat, kind=WorkerKind.GOVERNANCE))
workers.on_beat(WorkerKind.SCHEDULER)(partial(worker_heartbeat, kind=WorkerKind.SCHEDULER))
for _node in Node.values:
    workers.on_beat(_node)(partial(node_beat, _node))
    workers.on_beat(_node)(partial(checkpoint_beat, _node))  # signs the audit chain's head once per interval
