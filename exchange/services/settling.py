"""Settling: move any order on from whatever state it was left in, and the periodic
jobs that do so for every unsettled order (the reconciler) and re-route approved
proposals nobody routed (the sweeper)."""

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from chronosx import pipeline
from exchange import selectors
from exchange.models import Order
from exchange.services.cancelling import order_cancel, order_cancel_resolve
from exchange.services.orders import (
    ACTOR,
    client_order_id_for,
    lookup_audit,
    order_refresh,
    order_transition,
)
from exchange.services.sending import order_resolve, order_route
from governance.services.proposals import proposals_claim_for_sweep

log = logging.getLogger(__name__)
O = Order.Status


def order_route_or_settle(*, proposal_id) -> Order | None:
    """The route stage: route an approved proposal, or carry on with the order it already has."""
    existing = Order.objects.filter(client_order_id=client_order_id_for(proposal_id)).first()
    if existing is not None and existing.status != O.NEW:
        order_settle(order_id=existing.id)
        return existing
    return order_route(proposal_id=proposal_id)


def order_settle(*, order_id, now=None) -> str:
    """Move one unsettled order on, whatever state it was left in. Used by the reconciler."""
    now = now or timezone.now()
    order = Order.objects.get(id=order_id)
    status = order.status
    if status == O.NEW:
        order_route(proposal_id=order.proposal_id)
        return "routed"
    if status == O.SENDING:
        stale_before = now - timedelta(seconds=settings.CHRONOSX_ORDER_STALE_SECONDS)
        if order.updated_at >= stale_before:
            return "in_flight"
        if not order_transition(
            order_id=order.id, to=O.UNKNOWN, reason="router went quiet while sending", only_from=(O.SENDING,),
            fields={"last_error": "router went quiet while sending"},
        ):
            return "in_flight"
        lookup_audit(order, "taken_over", reason="stale while sending")
        status = O.UNKNOWN
    if status == O.CANCELLING:
        stale_before = now - timedelta(seconds=settings.CHRONOSX_ORDER_STALE_SECONDS)
        if order.updated_at >= stale_before or not order_transition(
            order_id=order.id, to=O.CANCEL_UNKNOWN, reason="went quiet while cancelling", only_from=(O.CANCELLING,),
            fields={"last_error": "went quiet while cancelling"},
        ):
            return "in_flight"
        lookup_audit(order, "taken_over", reason="stale while cancelling")
        status = O.CANCEL_UNKNOWN
    if status == O.CANCEL_UNKNOWN:
        return order_cancel_resolve(order_id=order.id)
    if status == O.UNKNOWN:
        return order_resolve(order_id=order.id, attempts=1, wait_first=False)
    if status in (O.OPEN, O.PARTIALLY_FILLED) and order.cancel_requested_at is not None:
        # The kill switch asked for it while its send was under way: it rests, so cancel it.
        return "cancel_" + order_cancel(order_id=order.id, actor=ACTOR, reason="requested by the kill switch while it was being sent")
    if status in (O.OPEN, O.PARTIALLY_FILLED):
        order_refresh(order_id=order.id)
        # To the back of the reconciler's queue, so many resting orders are all visited in turn.
        Order.objects.filter(id=order.id, status__in=(O.OPEN, O.PARTIALLY_FILLED)).update(updated_at=timezone.now())
        return "refreshed"
    return "final"


def orders_reconcile(*, now=None) -> dict:
    """Settle every order in new / sending (stale) / unknown / open / partially_filled:
    look it up, record its fills, give it its final status. Each order on its own, so
    one venue failure does not hold up the others."""
    now = now or timezone.now()
    counts = Counter()
    # A router that marked an order unknown looks it up itself for backoff * (2**n - 1) s; leave it that long.
    unknown_grace = settings.CHRONOSX_ROUTER_BACKOFF_SECONDS * 2**settings.CHRONOSX_ROUTER_LOOKUP_ATTEMPTS
    pending = selectors.orders_to_reconcile(
        now=now, stale_seconds=settings.CHRONOSX_ORDER_STALE_SECONDS, unknown_grace_seconds=unknown_grace
    )
    for order_id, status in pending:
        try:
            counts[order_settle(order_id=order_id, now=now)] += 1
        except Exception:
            # Logged with its traceback; venue exception texts are credential-free summaries by then.
            log.exception("reconciling order %s (%s) failed; it is retried next round", order_id, status)
            counts["failed"] += 1
    return {f"orders_{k}": v for k, v in counts.items()}


def orders_sweep(*, now=None) -> dict:
    """Re-enqueue routing for proposals left in `approved` with no order (a lost message, a dead worker)."""
    now = now or timezone.now()
    older_than = now - timedelta(seconds=settings.CHRONOSX_SWEEP_AFTER_SECONDS)
    proposal_ids = proposals_claim_for_sweep(
        proposal_ids=selectors.proposals_awaiting_routing(older_than=older_than),
        now=now,
        every_seconds=settings.CHRONOSX_SWEEP_AFTER_SECONDS,
    )
    for proposal_id in proposal_ids:
        pipeline.enqueue(pipeline.ROUTE, proposal_id)
    return {"rerouted": len(proposal_ids)}


def orders_reconcile_and_sweep(*, now=None) -> dict:
    """The exchange's periodic job: settle unsettled orders, re-route what nobody routed."""
    now = now or timezone.now()
    return {**orders_reconcile(now=now), **orders_sweep(now=now)}
