"""Periodic jobs: settle orders left unsettled, and re-route approved proposals nobody routed."""

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from exchange import selectors

log = logging.getLogger(__name__)


def orders_reconcile(*, now=None) -> dict:
    """Settle every order in new / sending (stale) / unknown / open / partially_filled:
    look it up, record its fills, give it its final status. Each order on its own, so
    one venue failure does not hold up the others."""
    from exchange.services.router import order_settle

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


def orders_sweep(*, now) -> dict:
    """Re-enqueue routing for proposals left in `approved` with no order (a lost message, a dead worker)."""
    from exchange.tasks import order_route_task
    from governance.services import proposals_claim_for_sweep

    older_than = now - timedelta(seconds=settings.CHRONOSX_SWEEP_AFTER_SECONDS)
    proposal_ids = proposals_claim_for_sweep(
        proposal_ids=selectors.proposals_awaiting_routing(older_than=older_than),
        now=now,
        every_seconds=settings.CHRONOSX_SWEEP_AFTER_SECONDS,
    )
    for proposal_id in proposal_ids:
        order_route_task.delay(str(proposal_id))
    return {"rerouted": len(proposal_ids)}
