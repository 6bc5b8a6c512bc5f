from celery import shared_task


@shared_task(name="exchange.route", acks_late=True)
def order_route_task(proposal_id: str):
    """Placeholder until the router exists: approved proposals wait, visibly, in `approved`."""


@shared_task(name="exchange.reconcile")
def orders_reconcile_task():
    from exchange.services import orders_reconcile

    return orders_reconcile()
