"""Cancelling: the kill switch's second half, and settling a cancel whose outcome is unknown.

Order of events, and why (the same care as sending):
1. Claim the order (open | partially_filled -> cancelling) in a transaction, before any
   network call: exactly one process sends each cancel, and a crash leaves a visible row.
2. Send one cancel, by client order id. The venue confirms it: the order's state and fills
   are read and applied, and it ends `cancelled` (or `filled`, when it filled first). The
   venue has no such open order: it is looked up, never assumed cancelled. No usable answer
   (timeout, 5xx, 429): `cancel_unknown`.
3. The reconciler looks a `cancel_unknown` order up: ended at the venue, it settles so;
   still open there, the cancel is sent again; anything else, it looks again later.
"""

import logging
from collections import Counter

from django.db import transaction
from django.utils import timezone

from exchange import selectors
from exchange.models import Order
from exchange.services.breakers import venue_call
from exchange.services.orders import ACTOR, FINAL, lookup_audit, order_apply, order_transition
from exchange.venues import (
    VenueError,
    VenueOrder,
    VenueOrderNotFound,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
    VenueUnknown,
    venue_for,
)
from governance.models import Proposal, TradingState
from governance.services.controls import trading_set
from governance.services.proposals import proposal_transition
from ledger.services import audit_record

log = logging.getLogger(__name__)
O = Order.Status
CANCELLABLE = (O.OPEN, O.PARTIALLY_FILLED)
# Sends under way (or of unknown outcome): the order may yet rest at the venue.
IN_FLIGHT = (O.SENDING, O.UNKNOWN)


def trading_kill_now(*, actor: str, reason: str) -> Counter:
    """The kill switch from a process that talks to the venue (the `trading kill` command):
    halt trading (audited as the kill; nothing new is routed from then on), then cancel
    every resting order here, so the outcome can be reported."""
    state = trading_set(state=TradingState.State.HALTED, actor=actor, reason=reason, kill=True)
    return orders_cancel_open(actor=actor, reason=state.reason)


def orders_cancel_open(*, actor: str, reason: str) -> Counter:
    """Cancel every order resting at a venue (open or partially filled), each on its own.
    Returns how each ended: cancelled | filled | unknown | refused | skipped; how many sends
    were still under way (in_flight): those are marked, and cancelled by the reconciler if they
    turn out to rest at the venue; and how many approvals never sent were withdrawn (expired)."""
    counts = Counter()
    for proposal_id in selectors.proposals_approved_unsent():
        # Approved before the halt and never sent: withdrawn, so a later enable sends none of them.
        counts["expired"] += proposal_transition(
            proposal_id=proposal_id, to=Proposal.Status.EXPIRED, only_from=(Proposal.Status.APPROVED,),
            actor=actor, reason=f"kill switch: {reason}; approved, never sent",
        )
    in_flight = Order.objects.filter(status__in=IN_FLIGHT, cancel_requested_at=None)
    for order_id in in_flight.values_list("id", flat=True):
        counts["in_flight"] += _cancel_request(order_id=order_id, actor=actor, reason=reason)
    for order_id in Order.objects.filter(status__in=CANCELLABLE).order_by("created_at").values_list("id", flat=True):
        try:
            counts[order_cancel(order_id=order_id, actor=actor, reason=reason)] += 1
        except Exception:
            # Logged with its traceback (venue texts are credential-free); the others go on.
            log.exception("cancelling order %s failed", order_id)
            counts["unknown" if _status(order_id) == O.CANCEL_UNKNOWN else "failed"] += 1
    return counts


def order_cancel(*, order_id, actor: str, reason: str, only_from=CANCELLABLE) -> str:
    """Send one cancel for a resting order and settle what the answer allows."""
    # The venue first (VenueNotConfigured in a process without its credentials), then the claim.
    venue = venue_for(Order.objects.values_list("venue", flat=True).get(id=order_id))
    if not order_transition(order_id=order_id, to=O.CANCELLING, reason=f"cancel: {reason}", only_from=only_from, actor=actor):
        return "skipped"
    order = Order.objects.get(id=order_id)
    try:
        answer = venue_call(venue, "cancel", symbol=order.symbol, client_order_id=order.client_order_id)
    except VenueOrderNotFound as exc:
        # Not open there any more: it filled, or ended some other way. Read what it is.
        _cancel_answer(order, "not_open", error=exc.summary)
        return _settle_from_venue(order=order, venue=venue)
    except VenueRejected as exc:
        _cancel_answer(order, "refused", error=exc.summary, code=exc.code)
        back = O.PARTIALLY_FILLED if order.filled_quantity > 0 else O.OPEN
        # A refusal would be the same next time: the reconciler does not keep asking.
        order_transition(
            order_id=order.id, to=back, reason=f"cancel refused: {exc.summary}", only_from=(O.CANCELLING,),
            fields={"cancel_requested_at": None, "last_error": exc.summary[:500]},
        )
        return "refused"
    except (VenueUnknown, VenueRateLimited, VenueUnavailable) as exc:
        _cancel_answer(order, "unknown", error=exc.summary)
        _mark_cancel_unknown(order=order, reason=exc.summary)
        return "unknown"
    _cancel_answer(order, "cancelled", venue_order_id=answer.venue_order_id)
    return _settle_from_venue(order=order, venue=venue, confirmed=answer)


def order_cancel_resolve(*, order_id) -> str:
    """The reconciler's turn on a `cancel_unknown` order: look it up and settle it, or cancel
    again when it is still open at the venue. Returns cancelled | filled | resent | unknown."""
    order = Order.objects.get(id=order_id)
    if order.status != O.CANCEL_UNKNOWN:
        return "skipped"
    venue = venue_for(order.venue)
    try:
        state = venue_call(venue, "fetch_order_by_client_id", symbol=order.symbol, client_order_id=order.client_order_id)
    except VenueOrderNotFound:
        lookup_audit(order, "cancel_not_found")  # it was open there: nothing to conclude from this
        return "unknown"
    except VenueUnavailable as exc:
        lookup_audit(order, "cancel_error", error=exc.summary)
        return "unknown"
    lookup_audit(order, "cancel_found", status=state.status)
    if state.status in CANCELLABLE:
        # The cancel never reached it: the same cancel again.
        outcome = order_cancel(order_id=order.id, actor=ACTOR, reason="still open after a cancel of unknown outcome", only_from=(O.CANCEL_UNKNOWN,))
        return "resent" if outcome != "skipped" else outcome
    return _apply_final(order=order, venue=venue, state=state)


# --- helpers -------------------------------------------------------------------------------


@transaction.atomic
def _cancel_request(*, order_id, actor: str, reason: str) -> int:
    """Mark an order whose send is under way, so that it is cancelled once it rests; audited."""
    marked = Order.objects.filter(id=order_id, status__in=IN_FLIGHT, cancel_requested_at=None).update(
        cancel_requested_at=timezone.now()
    )
    if marked:
        order = Order.objects.only("client_order_id", "proposal_id", "status").get(id=order_id)
        audit_record(
            kind="order.cancel_requested",
            actor=actor,
            proposal_id=order.proposal_id,
            payload={"client_order_id": order.client_order_id, "status": order.status, "reason": reason},
        )
    return marked


def _status(order_id) -> str | None:
    return Order.objects.filter(id=order_id).values_list("status", flat=True).first()


def _cancel_answer(order: Order, outcome: str, **details) -> None:
    audit_record(
        kind="order.cancel_answer",
        actor=f"venue:{order.venue}",
        proposal_id=order.proposal_id,
        payload={"client_order_id": order.client_order_id, "outcome": outcome, **details},
    )


def _mark_cancel_unknown(*, order: Order, reason: str) -> bool:
    return order_transition(
        order_id=order.id, to=O.CANCEL_UNKNOWN, reason=reason, only_from=(O.CANCELLING,), fields={"last_error": reason[:500]}
    )


def _settle_from_venue(*, order: Order, venue, confirmed: VenueOrder | None = None) -> str:
    """After a cancel: read the order and its fills and apply them. Only a final state ends
    it; when that cannot be read now, it is `cancel_unknown` for the reconciler."""
    try:
        state = venue_call(venue, "fetch_order_by_client_id", symbol=order.symbol, client_order_id=order.client_order_id)
    except VenueError as exc:
        lookup_audit(order, "error", error=exc.summary)
        _mark_cancel_unknown(order=order, reason=f"cancel answered, order not read: {exc.summary}")
        return "unknown"
    if state.status not in FINAL:
        if confirmed is not None and state.status is None:
            state = VenueOrder(client_order_id=order.client_order_id, venue_order_id=state.venue_order_id, status=O.CANCELLED)
        else:
            _mark_cancel_unknown(order=order, reason=f"after the cancel the venue says {state.status or 'nothing'}")
            return "unknown"
    return _apply_final(order=order, venue=venue, state=state)


def _apply_final(*, order: Order, venue, state: VenueOrder) -> str:
    """A final venue state with its fills: the order ends as the venue says."""
    fills = []
    if state.filled_quantity is None or state.filled_quantity > 0:
        try:
            fills = venue_call(venue, "fetch_fills", symbol=order.symbol, venue_order_id=state.venue_order_id or order.venue_order_id)
        except VenueUnavailable as exc:
            lookup_audit(order, "fills_error", error=exc.summary)
            fills = None
    settled = order_apply(order_id=order.id, state=state, fills=fills)
    if settled.status in FINAL:
        return "cancelled" if settled.status in (O.CANCELLED, O.REJECTED) else "filled"
    if settled.status == O.CANCELLING:
        _mark_cancel_unknown(order=settled, reason="cancel answered; the order's end is not settled yet")
    return "unknown"

