from celery import shared_task

from governance import services


@shared_task(name="governance.evaluate", acks_late=True)
def proposal_evaluate_task(proposal_id: str):
    services.proposal_evaluate(proposal_id=proposal_id)


@shared_task(name="governance.sweep")
def proposals_sweep_task():
    return services.proposals_sweep()
