"""Order state: one transitions table, one transition function, and applying what the
venue says (state and fills) to an order. The proposal follows its order's status, in
the same transaction, through governance's own proposal lifecycle."""

import uuid
from decimal import Decimal

from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone

from chronosx import metrics
from chronosx.canonical import canonical_json
from exchange import selectors
from exchange.models import Order
from exchange.services.breakers import reconciliation_mismatch, venue_call
from exchange.venues import VenueOrder, VenueOrderNotFound, VenueUnavailable, venue_for
from exchange.venues.base import plain
from governance.models import Proposal
from governance.services import controls
from governance.services.proposals import proposal_transition
from ledger.services import LedgerError, audit_record, fill_record

ACTOR = "exchange:router"
O = Order.Status

# Every status an order may move to, from each status. Final statuses lead nowhere.
#   new     -> sending (a router claims it: the only way to a send)
#   sending -> open (accepted) | unknown (no usable answer) | rejected (refused) | new (nothing was sent)
#   unknown -> open (found by a look-up) | sending (a resend, only after "no such order") | rejected
#   open, partially_filled -> cancelling (a cancel is claimed: the only way to a cancel request)
#   cancelling -> the venue's final word | cancel_unknown (no usable answer) | back (cancel refused)
#   cancel_unknown -> the venue's final word (a look-up) | cancelling (still open there: cancel again)
ORDER_TRANSITIONS = {
    O.NEW: {O.SENDING},
    O.SENDING: {O.OPEN, O.UNKNOWN, O.REJECTED, O.NEW},
    O.UNKNOWN: {O.OPEN, O.SENDING, O.REJECTED},
    O.OPEN: {O.PARTIALLY_FILLED, O.FILLED, O.CANCELLED, O.REJECTED, O.CANCELLING},
    O.PARTIALLY_FILLED: {O.FILLED, O.CANCELLED, O.CANCELLING},
    O.CANCELLING: {O.CANCELLED, O.FILLED, O.REJECTED, O.CANCEL_UNKNOWN, O.OPEN, O.PARTIALLY_FILLED},
    O.CANCEL_UNKNOWN: {O.CANCELLED, O.FILLED, O.REJECTED, O.CANCELLING},
}
FINAL = {O.FILLED, O.CANCELLED, O.REJECTED}
# A cancel is under way or unsettled: only the venue's final word moves these on.
CANCEL_PENDING = {O.CANCELLING, O.CANCEL_UNKNOWN}

# The proposal status each order status shows (governance's table says from where).
PROPOSAL_FOLLOWS = {
    O.OPEN: Proposal.Status.ROUTED,
    O.PARTIALLY_FILLED: Proposal.Status.PARTIALLY_FILLED,
    O.FILLED: Proposal.Status.FILLED,
    O.CANCELLED: Proposal.Status.CANCELLED,
    O.REJECTED: Proposal.Status.REJECTED,
}


def client_order_id_for(proposal_id) -> str:
    """Deterministic, so every router and every retry names the same order: 35 characters (WEEX allows 40)."""
    return "cx-" + uuid.UUID(str(proposal_id)).hex


def _proposal_lock_first(*, order_id) -> None:
    """Lock the order's proposal before the order: every path that locks both takes them in
    that order, as a router claiming an order does (sending._order_create_and_claim). The
    other way round, a router accepting its order and a second router claiming it deadlocked,
    and so did the reconciler applying fills beside a cancel settling."""
    of_order = Order.objects.filter(id=order_id).values("proposal_id")[:1]
    Proposal.objects.select_for_update().filter(id=Subquery(of_order)).values_list("id", flat=True).first()


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def order_transition(
    *, order_id, to: str, reason: str, only_from=None, fields=None, extra=None, actor=ACTOR, proposal_locked=False
) -> bool:
    """Move an order to `to` if the transitions table allows it from its status now (and,
    with `only_from`, only from those), setting `fields` with it. The row is locked, so
    exactly one router wins a claim; the audit event and the proposal's own transition
    are in the same transaction. `proposal_locked`: the caller's transaction already holds
    the proposal's lock (order_apply). Returns whether the order moved."""
    allowed = {status for status, targets in ORDER_TRANSITIONS.items() if to in targets}
    if only_from is not None:
        allowed &= set(only_from)
    if to in PROPOSAL_FOLLOWS and not proposal_locked:
        _proposal_lock_first(order_id=order_id)
    order = (
        Order.objects.select_for_update()
        .filter(id=order_id)
        .only("status", "client_order_id", "proposal_id", "filled_quantity")
        .first()
    )
    if order is None or order.status not in allowed:
        return False
    previous = order.status
    Order.objects.filter(id=order_id, status=previous).update(status=to, updated_at=timezone.now(), **(fields or {}))
    metrics.order_status(status=to)
    audit_record(
        kind="order.status",
        actor=actor,
        proposal_id=order.proposal_id,
        payload={"client_order_id": order.client_order_id, "from": previous, "to": to, "reason": reason, **(extra or {})},
    )
    if to in PROPOSAL_FOLLOWS:
        filled = (fields or {}).get("filled_quantity", order.filled_quantity)  # as the update left it
        proposal_transition(
            proposal_id=order.proposal_id,
            to=PROPOSAL_FOLLOWS[to],
            actor=actor,
            reason=f"order {order.client_order_id} {to}",
            extra={"client_order_id": order.client_order_id, "filled_quantity": str(filled)},
        )
    return True


def order_reject(*, order_id, reason: str, only_from=(O.SENDING,)) -> bool:
    """The venue refused (or never accepted) the order: it does not exist there. Final."""
    return order_transition(order_id=order_id, to=O.REJECTED, reason=reason, only_from=only_from, fields={"last_error": reason[:500]})


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def lookup_audit(order: Order, result: str, **details) -> None:
    """Audit a look-up's outcome. The same outcome again (the venue still times out, say)
    is counted on the order, and recorded only at its 2nd, 4th, 8th… time in a row with that
    count: an order the reconciler retries every few seconds for a day leaves a few dozen
    events, not thousands, and the trail still says how often it was tried."""
    outcome = canonical_json({"result": result, **details})[:300]
    current = Order.objects.select_for_update().values_list("lookup_outcome", "lookup_repeats").get(id=order.id)
    repeats = current[1] + 1 if current[0] == outcome else 1
    Order.objects.filter(id=order.id).update(lookup_outcome=outcome, lookup_repeats=repeats)
    if repeats & (repeats - 1):
        return  # not a power of two
    payload = {"client_order_id": order.client_order_id, "result": result, **details, "repeats": repeats}
    if repeats == 1 and current[1] > 1:
        payload["previous"] = {"outcome": current[0], "repeats": current[1]}
    audit_record(kind="order.lookup", actor=ACTOR, proposal_id=order.proposal_id, payload=payload)


# --- what the venue says ----------------------------------------------------------------


def order_refresh(*, order_id, hint: VenueOrder | None = None) -> None:
    """Read an accepted order's state and fills from its venue and apply them."""
    order = Order.objects.get(id=order_id)
    if order.status in FINAL:
        return
    venue = venue_for(order.venue)
    try:
        state = venue_call(venue, "fetch_order_by_client_id", symbol=order.symbol, client_order_id=order.client_order_id)
    except VenueOrderNotFound:
        lookup_audit(order, "not_found_after_accept")
        state = hint
    except VenueUnavailable as exc:
        lookup_audit(order, "error", error=exc.summary)
        state = hint
    if state is None or state.status is None:
        # Nothing known beyond "accepted": shown as routed; the reconciler reads the rest.
        order_apply(order_id=order.id, state=state, fills=None)
        return
    fills: list | None = []
    if state.filled_quantity is None or state.filled_quantity > 0:
        try:
            fills = venue_call(venue, "fetch_fills", symbol=order.symbol, venue_order_id=state.venue_order_id)
        except VenueUnavailable:
            fills = None
    order_apply(order_id=order.id, state=state, fills=fills)


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def order_apply(*, order_id, state: VenueOrder | None, fills: list | None) -> Order:
    """Record fills (each venue trade once) and move the order and its proposal.

    `fills` None: they could not be read, so the order cannot become final now. The
    ledger is the truth for filled quantity; a final venue state that disagrees with
    it trips the reconciliation_mismatch breaker and keeps the order open.
    """
    _proposal_lock_first(order_id=order_id)
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("proposal__strategy", "proposal__instrument")  # what each fill books under
        .get(id=order_id)
    )
    for fill in fills or []:
        try:
            fill_record(
                order=order,
                trade_id=fill.trade_id,
                price=fill.price,
                quantity=fill.quantity,
                fee=fill.fee,
                fee_asset=fill.fee_asset,
                filled_at=fill.filled_at,
            )
        except LedgerError as exc:
            # A fill the ledger refuses (say a close beyond the open lots) would fail
            # the same way on every retry: halt routing for an operator instead.
            reconciliation_mismatch(
                venue=order.venue, client_order_id=order.client_order_id, detail=f"fill {fill.trade_id} not booked: {exc}"
            )
            fills = None  # the order cannot become final until an operator settles it
            break
    if fills and order.proposal.intent == Proposal.Intent.CLOSE:
        # A close realizes PnL: a portfolio loss now past its limit trips its breaker
        # (trading becomes reduce-only), on the UTC day of the last fill.
        controls.loss_limits_enforce_now(actor=ACTOR, at=max(fill.filled_at for fill in fills))
    ledger_filled, average = selectors.order_ledger_totals(order=order)
    if average is not None:
        average = plain(average.quantize(Decimal("1E-12")))
    previous = order.status
    status = previous if previous in FINAL else _status_from(state=state, fills=fills, ledger_filled=ledger_filled, order=order)
    if previous in CANCEL_PENDING and status not in FINAL:
        status = previous  # fills are booked, but only the cancel's settlement moves it
    venue_order_id = order.venue_order_id or (state.venue_order_id if state is not None and state.venue_order_id else "")
    fields = {"filled_quantity": ledger_filled, "average_price": average, "venue_order_id": venue_order_id}
    progress = {"filled_quantity": str(ledger_filled), "average_price": None if average is None else str(average)}
    if status != previous and previous in (O.SENDING, O.UNKNOWN) and status != O.OPEN:
        # Accepted after all, and already further on: through open, as the table says.
        order_transition(order_id=order.id, to=O.OPEN, reason="venue state", only_from=(previous,), proposal_locked=True)
        previous = O.OPEN
    if status != previous:
        order_transition(
            order_id=order.id, to=status, reason="venue state", only_from=(previous,), fields=fields, extra=progress,
            proposal_locked=True,
        )
    elif (ledger_filled, average, venue_order_id) != (order.filled_quantity, order.average_price, order.venue_order_id):
        Order.objects.filter(id=order.id).update(updated_at=timezone.now(), **fields)
        audit_record(
            kind="order.progress",
            actor=ACTOR,
            proposal_id=order.proposal_id,
            payload={"client_order_id": order.client_order_id, "status": status, **progress},
        )
    else:
        # An order marked open by the send path: its proposal shows routed.
        target = PROPOSAL_FOLLOWS.get(status)
        if target is not None:
            proposal_transition(
                proposal_id=order.proposal_id,
                to=target,
                actor=ACTOR,
                reason=f"order {order.client_order_id} {status}",
                extra={"client_order_id": order.client_order_id, "filled_quantity": str(ledger_filled)},
            )
    order.refresh_from_db()
    return order


def _status_from(*, state: VenueOrder | None, fills, ledger_filled: Decimal, order: Order) -> str:
    fallback = O.PARTIALLY_FILLED if ledger_filled > 0 else O.OPEN
    if state is None or state.status is None:
        return fallback
    venue_filled = state.filled_quantity
    if venue_filled is not None and ledger_filled > venue_filled:
        reconciliation_mismatch(
            venue=order.venue,
            client_order_id=order.client_order_id,
            detail=f"ledger has {ledger_filled} filled, the venue {venue_filled}",
        )
        return fallback
    if state.status in (O.FILLED, O.CANCELLED, O.REJECTED):
        if fills is None:
            return fallback  # final only once its fills are in the ledger
        if venue_filled is not None and ledger_filled != venue_filled:
            reconciliation_mismatch(
                venue=order.venue,
                client_order_id=order.client_order_id,
                detail=f"venue says {state.status} with {venue_filled} filled, the ledger has {ledger_filled}",
            )
            return fallback
        if state.status == O.FILLED and ledger_filled != order.quantity:
            reconciliation_mismatch(
                venue=order.venue,
                client_order_id=order.client_order_id,
                detail=f"venue says filled, the ledger has {ledger_filled} of {order.quantity}",
            )
            return fallback
        if state.status == O.REJECTED and ledger_filled > 0:
            return O.CANCELLED  # refused after part of it traded: those fills stand
        return state.status
    return fallback
