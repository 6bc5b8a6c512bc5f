"""The exchange's Celery tasks (queue "router", the only process holding venue
credentials): the route stage, the cancel stage (kill switch), the reconciler, and the router's heartbeat, which
probes the venue for the execution node."""

from celery import shared_task

from chronosx import pipeline, workers
from exchange.services.breakers import venue_probe
from exchange.services.cancelling import orders_cancel_open
from exchange.services.settling import order_route_or_settle, orders_reconcile_and_sweep
from governance.models import WorkerKind
from governance.services.heartbeats import worker_heartbeat


@shared_task(name="exchange.route", acks_late=True)
def order_route_task(proposal_id: str):
    """Route one approved proposal. Idempotent: the order row and its claim decide."""
    order = order_route_or_settle(proposal_id=proposal_id)
    return None if order is None else order.client_order_id


@shared_task(name="exchange.cancel_open", acks_late=True)
def orders_cancel_open_task(actor: str, reason: str):
    """The kill switch's second half, after its halt committed: cancel every resting order."""
    return dict(orders_cancel_open(actor=actor, reason=reason))


@shared_task(name="exchange.reconcile")
def orders_reconcile_task():
    return orders_reconcile_and_sweep()


@workers.on_beat(WorkerKind.ROUTER)
def router_beat():
    worker_heartbeat(kind=WorkerKind.ROUTER)
    venue_probe()


pipeline.register(pipeline.ROUTE, order_route_task, queue="router")
pipeline.register(pipeline.CANCEL, orders_cancel_open_task, queue="router")
