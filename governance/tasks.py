from celery import shared_task

from governance import nodes, services


@shared_task(name="governance.evaluate", acks_late=True)
def proposal_evaluate_task(proposal_id: str):
    services.proposal_evaluate(proposal_id=proposal_id)


@shared_task(name="governance.sweep")
def proposals_sweep_task():
    return services.proposals_sweep()


@shared_task(name="governance.vote", acks_late=True)
def node_vote_task(proposal_id: str, node: str):
    """Sent to the node's own queue (queue=node); only that node's worker holds the key to sign it."""
    vote = nodes.node_vote(proposal_id=proposal_id, node=node)
    return None if vote is None else vote.verdict
