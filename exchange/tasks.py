from celery import shared_task


@shared_task(name="exchange.route", acks_late=True)
def order_route_task(proposal_id: str):
    """Route one approved proposal (queue "router"). Idempotent: the order row and its claim decide."""
    from exchange.services import order_route

    order = order_route(proposal_id=proposal_id)
    return None if order is None else order.client_order_id


@shared_task(name="exchange.reconcile")
def orders_reconcile_task():
    from exchange.services import orders_reconcile

    return orders_reconcile()
