from datetime import timedelta
from decimal import Decimal

from django.db.models import Q

from exchange.models import Order
from governance.models import Proposal

OPEN_STATUSES = (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)
IN_FLIGHT_STATUSES = (Order.Status.NEW, Order.Status.SENDING, Order.Status.CANCELLING)


def orders_to_reconcile(
    *, now, stale_seconds: float, unknown_grace_seconds: float = 0, limit: int = 200
) -> list[tuple[int, str]]:
    """Orders not settled yet: open ones, unknown ones their router has stopped looking up,
    cancels of unknown outcome, and new/sending/cancelling ones whose process went quiet."""
    stale_before = now - timedelta(seconds=stale_seconds)
    unknown_before = now - timedelta(seconds=unknown_grace_seconds)
    return list(
        Order.objects.filter(
            Q(status__in=OPEN_STATUSES)
            | Q(status=Order.Status.UNKNOWN, updated_at__lte=unknown_before)
            | Q(status=Order.Status.CANCEL_UNKNOWN)
            | Q(status__in=IN_FLIGHT_STATUSES, updated_at__lt=stale_before)
        )
        .order_by("updated_at")
        .values_list("id", "status")[:limit]
    )


def proposals_awaiting_routing(*, older_than, limit: int = 500) -> list:
    """Approved proposals with no order yet that have waited longer than they should."""
    return list(
        Proposal.objects.filter(status=Proposal.Status.APPROVED, status_changed_at__lt=older_than, orders__isnull=True)
        .order_by("status_changed_at")
        .values_list("id", flat=True)[:limit]
    )


def proposals_approved_unsent() -> list:
    """Approved proposals with no order, or only one never sent (`new`)."""
    sent = [status for status in Order.Status.values if status != Order.Status.NEW]
    return list(
        Proposal.objects.filter(status=Proposal.Status.APPROVED)
        .exclude(orders__status__in=sent)
        .order_by("status_changed_at")
        .values_list("id", flat=True)
    )


def order_ledger_totals(*, order: Order) -> tuple[Decimal, Decimal | None]:
    """(filled quantity, average price) of an order from its fills in the ledger."""
    quantity, notional = Decimal(0), Decimal(0)
    for price, qty in order.fills.values_list("price", "quantity"):
        price, qty = Decimal(price), Decimal(qty)
        quantity += qty
        notional += price * qty
    if not quantity:
        return Decimal(0), None
    return quantity, notional / quantity
