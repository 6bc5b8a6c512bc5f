"""The router: an approved proposal becomes exactly one venue order.

Order of events, and why:
1. Re-verify the quorum certificate, trading state and breakers: nothing reaches a
   venue without all three, however the task was enqueued.
2. Write the Order row (client order id derived from the proposal id) and claim it
   (new -> sending, a conditional update) in one transaction, before any network
   call: a crash from here on leaves a visible row, never an invisible order.
3. Send. An answer settles it (accepted / refused). No usable answer (timeout,
   connection error, 5xx) means the outcome is UNKNOWN: the order is marked
   unknown and looked up by its client order id, with backoff, before anything
   else; it is resent, with the same client order id, only when the venue
   positively says it has no such order.
4. Fills are read from the venue keyed by its trade id (ledger.fill_record stores
   each once) and the proposal moves to routed / partially_filled / filled / rejected.
"""

import json
import logging
import time
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exchange import selectors
from exchange.models import Order
from exchange.services import breakers
from exchange.venues import (
    OrderRequest,
    Venue,
    VenueNotConfigured,
    VenueOrder,
    VenueOrderNotFound,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
    VenueUnknown,
    venue_current,
    venue_for,
)
from exchange.venues.base import plain
from governance import quorum
from governance.models import Proposal
from governance.selectors import breakers_tripped
from governance.services import proposal_transition, trading_state_locked
from ledger.models import AuditEvent
from ledger.services import LedgerError, audit_record, fill_record

log = logging.getLogger(__name__)

ACTOR = "exchange:router"
FINAL = {Order.Status.FILLED, Order.Status.CANCELLED, Order.Status.REJECTED}
# The proposal status each order status shows, and where it may come from.
PROPOSAL_STATUS = {
    Order.Status.OPEN: ("routed", ("approved",)),
    Order.Status.PARTIALLY_FILLED: ("partially_filled", ("approved", "routed")),
    Order.Status.FILLED: ("filled", ("approved", "routed", "partially_filled")),
    Order.Status.CANCELLED: ("cancelled", ("approved", "routed", "partially_filled")),
    Order.Status.REJECTED: ("rejected", ("approved", "routed")),
}


def client_order_id_for(proposal_id) -> str:
    """Deterministic, so every router and every retry names the same order: 35 characters (WEEX allows 40)."""
    return "cx-" + uuid.UUID(str(proposal_id)).hex


# --- entry point ------------------------------------------------------------------


def order_route(*, proposal_id) -> Order | None:
    """Route an approved proposal, or carry on with the order it already has. Safe to call any number of times."""
    existing = Order.objects.filter(client_order_id=client_order_id_for(proposal_id)).first()
    if existing is not None and existing.status != Order.Status.NEW:
        order_settle(order_id=existing.id)
        return existing
    proposal = Proposal.objects.select_related("instrument", "decision").filter(id=proposal_id).first()
    if proposal is None or proposal.status != Proposal.Status.APPROVED:
        return existing
    if existing is None and _expire_if_stale(proposal=proposal):
        return None
    # Looked up on the module at call time: the certificate check is governance's to change.
    verified, why = quorum.quorum_certificate_verify(proposal=proposal)
    if not verified:
        _refuse(proposal_id=proposal.id, reason=f"no valid quorum certificate: {why}")
        return existing
    try:
        venue = venue_current()
    except VenueNotConfigured as exc:
        _refuse(proposal_id=proposal.id, reason=f"venue not configured: {exc.summary}")
        return existing
    order = _order_create_and_claim(proposal=proposal, venue=venue)
    if order is not None:
        _order_send(order=order, venue=venue)
    return order


def _expire_if_stale(*, proposal: Proposal) -> bool:
    """An approval is good for a bounded time. After a halt, re-enabling trading must not
    send orders approved long ago at prices nobody re-checked: they end `expired`, unsent."""
    limit = settings.CHRONOSX_APPROVAL_MAX_AGE_SECONDS
    age = (timezone.now() - proposal.decision.decided_at).total_seconds()
    if age <= limit:
        return False
    return proposal_transition(
        proposal_id=proposal.id,
        to=Proposal.Status.EXPIRED,
        from_statuses=(Proposal.Status.APPROVED,),
        actor=ACTOR,
        reason=f"approved {age:.0f} s ago, longer than the {limit:.0f} s an approval is good for; never sent",
    )


def _gate() -> str | None:
    """Why routing must not send now, or None. Call inside a transaction (it locks the trading state)."""
    state = trading_state_locked()
    if not state.enabled:
        return f"trading halted: {state.reason}"
    tripped = breakers_tripped()
    if tripped:
        return "circuit breaker tripped: " + ", ".join(tripped)
    return None


def _refuse(*, proposal_id, reason: str) -> None:
    """Audit a refusal once per proposal and reason: the sweeper retries, and must not flood the trail."""
    log.info("routing refused for %s: %s", proposal_id, reason)
    last = AuditEvent.objects.filter(proposal_id=proposal_id, kind="order.refused").order_by("-seq").first()
    if last is not None and json.loads(last.payload).get("reason") == reason:
        return
    audit_record(kind="order.refused", actor=ACTOR, proposal_id=proposal_id, payload={"reason": reason})


def _order_create_and_claim(*, proposal: Proposal, venue: Venue) -> Order | None:
    with transaction.atomic():
        refusal = _gate()
        if refusal:
            _refuse(proposal_id=proposal.id, reason=refusal)
            return None
        locked = Proposal.objects.select_for_update().filter(id=proposal.id, status=Proposal.Status.APPROVED).first()
        if locked is None:
            return None
        cid = client_order_id_for(proposal.id)
        order, created = Order.objects.get_or_create(
            client_order_id=cid,
            defaults={
                "proposal": proposal,
                "venue": venue.name,
                "live": venue.live,
                "symbol": proposal.instrument.symbol,
                "side": proposal.side,
                "order_type": proposal.order_type,
                "quantity": proposal.decision.approved_quantity,
                "limit_price": proposal.limit_price,
            },
        )
        if created:
            audit_record(
                kind="order.created",
                actor=ACTOR,
                proposal_id=proposal.id,
                payload={
                    "client_order_id": cid,
                    "venue": order.venue,
                    "live": order.live,
                    "symbol": order.symbol,
                    "side": order.side,
                    "order_type": order.order_type,
                    "quantity": str(order.quantity),
                    "limit_price": None if order.limit_price is None else str(order.limit_price),
                },
            )
        if not _claim(order=order, from_status=Order.Status.NEW):
            return None
    return Order.objects.select_related("proposal").get(id=order.id)


def _claim(*, order: Order, from_status: str) -> bool:
    """Take the right to send: exactly one router wins the conditional update."""
    from django.db.models import F

    claimed = Order.objects.filter(id=order.id, status=from_status).update(
        status=Order.Status.SENDING, send_attempts=F("send_attempts") + 1, updated_at=timezone.now()
    )
    return bool(claimed)


# --- sending ----------------------------------------------------------------------


def _call(venue: Venue, method: str, **kwargs):
    """One venue call, timed and counted for the automatic breakers."""
    started = time.monotonic()
    try:
        result = getattr(venue, method)(**kwargs)
    except (VenueRejected, VenueUnknown, VenueUnavailable) as exc:
        breakers.venue_call_failed(venue=venue.name, summary=f"{method}: {exc.summary}")
        raise
    except VenueOrderNotFound:
        # A definite answer, not a failure.
        breakers.venue_call_ok(venue=venue.name, latency_ms=int((time.monotonic() - started) * 1000))
        raise
    breakers.venue_call_ok(venue=venue.name, latency_ms=int((time.monotonic() - started) * 1000))
    return result


def _backoff(attempt: int) -> None:
    time.sleep(settings.CHRONOSX_ROUTER_BACKOFF_SECONDS * (2**attempt))


def _venue_answer(order: Order, outcome: str, **details) -> None:
    audit_record(
        kind="order.venue_answer",
        actor=f"venue:{order.venue}",
        proposal_id=order.proposal_id,
        payload={"client_order_id": order.client_order_id, "attempt": order.send_attempts, "outcome": outcome, **details},
    )


def _order_send(*, order: Order, venue: Venue) -> None:
    """Send a claimed (sending) order and settle what the answer allows."""
    proposal = order.proposal
    try:
        quantity = venue.quantity_for(symbol=order.symbol, quantity=order.quantity)
        limit_price = None
        if order.limit_price is not None:
            limit_price = venue.price_for(symbol=order.symbol, side=order.side, price=order.limit_price)
    except VenueRejected as exc:
        order_reject(order_id=order.id, reason=exc.summary)
        return
    except VenueUnavailable as exc:
        # Nothing was sent (the venue's markets could not be read): back to new for the reconciler.
        breakers.venue_call_failed(venue=venue.name, summary=f"markets: {exc.summary}")
        if Order.objects.filter(id=order.id, status=Order.Status.SENDING).update(
            status=Order.Status.NEW, last_error=exc.summary[:500], updated_at=timezone.now()
        ):
            _venue_answer(order, "not_sent", reason=exc.summary)
        return
    if quantity <= 0:
        order_reject(order_id=order.id, reason=f"{order.quantity} is below the venue's amount precision")
        return
    if quantity != order.quantity or limit_price != order.limit_price:
        with transaction.atomic():
            Order.objects.filter(id=order.id).update(quantity=quantity, limit_price=limit_price)
            audit_record(
                kind="order.rounded",
                actor=ACTOR,
                proposal_id=proposal.id,
                payload={
                    "client_order_id": order.client_order_id,
                    "quantity": str(quantity),
                    "limit_price": None if limit_price is None else str(limit_price),
                    "reason": "venue precision (quantity rounded down)",
                },
            )
        order.quantity, order.limit_price = quantity, limit_price
    request = OrderRequest(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        order_type=order.order_type,
        quantity=quantity,
        limit_price=limit_price,
        reference_price=proposal.reference_price,
        expected_slippage_bps=proposal.expected_slippage_bps,
        quote_asset=proposal.instrument.quote_asset,
        reduce_only=proposal.intent == Proposal.Intent.CLOSE,
    )
    order.refresh_from_db(fields=["send_attempts"])
    audit_record(
        kind="order.sent",
        actor=ACTOR,
        proposal_id=proposal.id,
        payload={
            "client_order_id": order.client_order_id,
            "venue": order.venue,
            "attempt": order.send_attempts,
            "quantity": str(quantity),
            "limit_price": None if limit_price is None else str(limit_price),
        },
    )
    retries = settings.CHRONOSX_ROUTER_RATE_LIMIT_RETRIES
    for attempt in range(retries + 1):
        try:
            answer = _call(venue, "place", request=request)
        except VenueRateLimited as exc:
            # Not processed. Honour it: wait, then the same request with the same client order id.
            _venue_answer(order, "rate_limited", error=exc.summary)
            if attempt < retries:
                _backoff(attempt)
                continue
            # Still limited: leave it unknown (the safe state) for the reconciler to look up.
            _mark_unknown(order=order, reason=exc.summary)
            return
        except VenueRejected as exc:
            _venue_answer(order, "rejected", error=exc.summary, code=exc.code)
            if order.send_attempts > 1:
                # A resend refused (e.g. as a duplicate) may mean an earlier send got through after all.
                if _mark_unknown(order=order, reason=exc.summary) and order_resolve(order_id=order.id, resend=False) == "not_found":
                    order_reject(order_id=order.id, reason=exc.summary, from_statuses=(Order.Status.UNKNOWN,))
                return
            order_reject(order_id=order.id, reason=exc.summary)
            return
        except VenueUnknown as exc:
            _venue_answer(order, "unknown", error=exc.summary)
            if _mark_unknown(order=order, reason=exc.summary):
                order_resolve(order_id=order.id)
            return
        _venue_answer(order, "accepted", venue_order_id=answer.venue_order_id)
        Order.objects.filter(id=order.id, status=Order.Status.SENDING).update(
            status=Order.Status.OPEN, venue_order_id=answer.venue_order_id, last_error="", updated_at=timezone.now()
        )
        order_refresh(order_id=order.id, hint=answer)
        return


def _mark_unknown(*, order: Order, reason: str) -> bool:
    return bool(
        Order.objects.filter(id=order.id, status=Order.Status.SENDING).update(
            status=Order.Status.UNKNOWN, last_error=reason[:500], updated_at=timezone.now()
        )
    )


# --- unknown outcomes ---------------------------------------------------------------


def order_resolve(*, order_id, attempts: int | None = None, wait_first: bool = True, resend: bool = True) -> str:
    """Settle an order whose outcome is unknown: look it up by client order id (with backoff)
    and adopt what the venue has; resend (same client order id) only on a positive "no such order".

    Returns what happened: found | resent | not_found | unresolved | rejected | held.
    """
    order = Order.objects.select_related("proposal").get(id=order_id)
    if order.status != Order.Status.UNKNOWN:
        return "skipped"
    venue = venue_for(order.venue)
    attempts = settings.CHRONOSX_ROUTER_LOOKUP_ATTEMPTS if attempts is None else attempts
    for attempt in range(attempts):
        if wait_first or attempt:
            _backoff(attempt)
        try:
            found = _call(venue, "fetch_order_by_client_id", symbol=order.symbol, client_order_id=order.client_order_id)
        except VenueOrderNotFound:
            _lookup_audit(order, "not_found")
            break
        except VenueUnavailable as exc:
            _lookup_audit(order, "error", error=exc.summary)
            continue
        _lookup_audit(order, "found", venue_order_id=found.venue_order_id)
        Order.objects.filter(id=order.id, status=Order.Status.UNKNOWN).update(
            status=Order.Status.OPEN, venue_order_id=found.venue_order_id, updated_at=timezone.now()
        )
        order_refresh(order_id=order.id, hint=found)
        return "found"
    else:
        return "unresolved"  # still unknown: the reconciler looks again later

    # The venue says it has no such order.
    if not resend:
        return "not_found"
    if order.send_attempts >= settings.CHRONOSX_ROUTER_SEND_ATTEMPTS:
        order_reject(
            order_id=order.id,
            reason=f"not accepted by the venue after {order.send_attempts} sends",
            from_statuses=(Order.Status.UNKNOWN,),
        )
        return "rejected"
    with transaction.atomic():
        refusal = _gate()
        if refusal:
            _refuse(proposal_id=order.proposal_id, reason=f"resend held: {refusal}")
            return "held"
        if not _claim(order=order, from_status=Order.Status.UNKNOWN):
            return "skipped"
        audit_record(
            kind="order.resend",
            actor=ACTOR,
            proposal_id=order.proposal_id,
            payload={"client_order_id": order.client_order_id, "reason": "venue has no such order"},
        )
    _order_send(order=Order.objects.select_related("proposal__instrument").get(id=order.id), venue=venue)
    return "resent"


def _lookup_audit(order: Order, result: str, **details) -> None:
    audit_record(
        kind="order.lookup",
        actor=ACTOR,
        proposal_id=order.proposal_id,
        payload={"client_order_id": order.client_order_id, "result": result, **details},
    )


# --- state and fills ---------------------------------------------------------------


def order_refresh(*, order_id, hint: VenueOrder | None = None) -> None:
    """Read an accepted order's state and fills from its venue and apply them."""
    order = Order.objects.get(id=order_id)
    if order.status in FINAL:
        return
    venue = venue_for(order.venue)
    try:
        state = _call(venue, "fetch_order_by_client_id", symbol=order.symbol, client_order_id=order.client_order_id)
    except VenueOrderNotFound:
        _lookup_audit(order, "not_found_after_accept")
        state = hint
    except VenueUnavailable as exc:
        _lookup_audit(order, "error", error=exc.summary)
        state = hint
    if state is None or state.status is None:
        # Nothing known beyond "accepted": shown as routed; the reconciler reads the rest.
        order_apply(order_id=order.id, state=state, fills=None)
        return
    fills: list | None = []
    if state.filled_quantity is None or state.filled_quantity > 0:
        try:
            fills = _call(venue, "fetch_fills", symbol=order.symbol, venue_order_id=state.venue_order_id)
        except VenueUnavailable:
            fills = None
    order_apply(order_id=order.id, state=state, fills=fills)


@transaction.atomic
def order_apply(*, order_id, state: VenueOrder | None, fills: list | None) -> Order:
    """Record fills (each venue trade once) and move the order and its proposal.

    `fills` None: they could not be read, so the order cannot become final now. The
    ledger is the truth for filled quantity; a final venue state that disagrees with
    it trips the reconciliation_mismatch breaker and keeps the order open.
    """
    order = Order.objects.select_for_update().select_related("proposal").get(id=order_id)
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
            breakers.reconciliation_mismatch(
                venue=order.venue, client_order_id=order.client_order_id, detail=f"fill {fill.trade_id} not booked: {exc}"
            )
            fills = None  # the order cannot become final until an operator settles it
            break
    ledger_filled, average = selectors.order_ledger_totals(order=order)
    if average is not None:
        average = plain(average.quantize(Decimal("1E-12")))
    previous = order.status
    status = previous if previous in FINAL else _status_from(state=state, fills=fills, ledger_filled=ledger_filled, order=order)
    changed = status != previous or ledger_filled != order.filled_quantity or average != order.average_price
    if state is not None and state.venue_order_id and not order.venue_order_id:
        order.venue_order_id = state.venue_order_id
        changed = True
    if not changed:
        _proposal_follow(order=order)  # an order marked open by the send path: the proposal shows routed
        return order
    order.status, order.filled_quantity, order.average_price = status, ledger_filled, average
    order.save(update_fields=["status", "filled_quantity", "average_price", "venue_order_id", "updated_at"])
    audit_record(
        kind="order.status",
        actor=ACTOR,
        proposal_id=order.proposal_id,
        payload={
            "client_order_id": order.client_order_id,
            "from": previous,
            "to": status,
            "filled_quantity": str(ledger_filled),
            "average_price": None if average is None else str(average),
        },
    )
    _proposal_follow(order=order)
    return order


def _status_from(*, state: VenueOrder | None, fills, ledger_filled: Decimal, order: Order) -> str:
    fallback = Order.Status.PARTIALLY_FILLED if ledger_filled > 0 else Order.Status.OPEN
    if state is None or state.status is None:
        return fallback
    venue_filled = state.filled_quantity
    if venue_filled is not None and ledger_filled > venue_filled:
        breakers.reconciliation_mismatch(
            venue=order.venue,
            client_order_id=order.client_order_id,
            detail=f"ledger has {ledger_filled} filled, the venue {venue_filled}",
        )
        return fallback
    if state.status in (Order.Status.FILLED, Order.Status.CANCELLED, Order.Status.REJECTED):
        if fills is None:
            return fallback  # final only once its fills are in the ledger
        if venue_filled is not None and ledger_filled != venue_filled:
            breakers.reconciliation_mismatch(
                venue=order.venue,
                client_order_id=order.client_order_id,
                detail=f"venue says {state.status} with {venue_filled} filled, the ledger has {ledger_filled}",
            )
            return fallback
        if state.status == Order.Status.FILLED and ledger_filled != order.quantity:
            breakers.reconciliation_mismatch(
                venue=order.venue,
                client_order_id=order.client_order_id,
                detail=f"venue says filled, the ledger has {ledger_filled} of {order.quantity}",
            )
            return fallback
        if state.status == Order.Status.REJECTED and ledger_filled > 0:
            return Order.Status.CANCELLED  # refused after part of it traded: those fills stand
        return state.status
    return fallback


def _proposal_follow(*, order: Order) -> None:
    target = PROPOSAL_STATUS.get(order.status)
    if target is None:
        return
    to, from_statuses = target
    proposal_transition(
        proposal_id=order.proposal_id,
        to=to,
        actor=ACTOR,
        reason=f"order {order.client_order_id} {order.status}",
        from_statuses=from_statuses,
        extra={"client_order_id": order.client_order_id, "filled_quantity": str(order.filled_quantity)},
    )


@transaction.atomic
def order_reject(*, order_id, reason: str, from_statuses=(Order.Status.SENDING,)) -> bool:
    """The venue refused (or never accepted) the order: it does not exist there. Final."""
    order = Order.objects.select_for_update().get(id=order_id)
    if order.status not in from_statuses:
        return False
    previous = order.status
    order.status, order.last_error = Order.Status.REJECTED, reason[:500]
    order.save(update_fields=["status", "last_error", "updated_at"])
    audit_record(
        kind="order.status",
        actor=ACTOR,
        proposal_id=order.proposal_id,
        payload={"client_order_id": order.client_order_id, "from": previous, "to": "rejected", "reason": reason},
    )
    _proposal_follow(order=order)
    return True


# --- settling any order -------------------------------------------------------------


def order_settle(*, order_id, now=None) -> str:
    """Move one unsettled order on, whatever state it was left in. Used by the reconciler."""
    now = now or timezone.now()
    order = Order.objects.get(id=order_id)
    status = order.status
    if status == Order.Status.NEW:
        order_route(proposal_id=order.proposal_id)
        return "routed"
    if status == Order.Status.SENDING:
        stale_before = now - timedelta(seconds=settings.CHRONOSX_ORDER_STALE_SECONDS)
        taken = Order.objects.filter(id=order.id, status=Order.Status.SENDING, updated_at__lt=stale_before).update(
            status=Order.Status.UNKNOWN, last_error="router went quiet while sending", updated_at=timezone.now()
        )
        if not taken:
            return "in_flight"
        _lookup_audit(order, "taken_over", reason="stale while sending")
        status = Order.Status.UNKNOWN
    if status == Order.Status.UNKNOWN:
        return order_resolve(order_id=order.id, attempts=1, wait_first=False)
    if status in (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED):
        order_refresh(order_id=order.id)
        # To the back of the reconciler's queue, so many resting orders are all visited in turn.
        Order.objects.filter(id=order.id, status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)).update(
            updated_at=timezone.now()
        )
        return "refreshed"
    return "final"
