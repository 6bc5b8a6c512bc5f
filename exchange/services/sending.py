"""Sending: an approved proposal becomes exactly one venue order.

Order of events, and why:
1. Re-verify the quorum certificate, trading state and breakers: nothing reaches a
   venue without all three, however the task was enqueued.
2. Write the Order row (client order id derived from the proposal id) and claim it
   (new -> sending) in one transaction, before any network call: a crash from here on
   leaves a visible row, never an invisible order.
3. Send. An answer settles it (accepted / refused). No usable answer (timeout,
   connection error, 5xx) means the outcome is UNKNOWN: the order is marked unknown
   and looked up by its client order id, with backoff, before anything else; it is
   resent, with the same client order id, only when the venue positively says it has
   no such order.
4. Fills are read from the venue keyed by its trade id (orders.order_refresh).
"""

import json
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from exchange.models import Order
from exchange.services.breakers import venue_call, venue_call_failed
from exchange.services.orders import (
    ACTOR,
    client_order_id_for,
    lookup_audit,
    order_refresh,
    order_reject,
    order_transition,
)
from exchange.venues import (
    OrderRequest,
    Venue,
    VenueNotConfigured,
    VenueOrderNotFound,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
    VenueUnknown,
    venue_current,
    venue_for,
)
from governance.models import Proposal
from governance.selectors.forcing import order_quantity
from governance.selectors.quorum import DECISION_CHECK_RELATED, quorum_certificate_check, vote_opened_at
from governance.services.controls import routing_refusal_locked
from governance.services.proposals import proposal_transition
from ledger.models import AuditEvent
from ledger.services import audit_record

log = logging.getLogger(__name__)
O = Order.Status


def order_route(*, proposal_id) -> Order | None:
    """Route an approved proposal that has no order yet (or only an unsent one).
    Safe to call any number of times: the order row and its claim decide."""
    existing = Order.objects.filter(client_order_id=client_order_id_for(proposal_id)).first()
    if existing is not None and existing.status != O.NEW:
        return existing
    proposal = Proposal.objects.select_related(*DECISION_CHECK_RELATED).filter(id=proposal_id).first()
    if proposal is None or proposal.status != Proposal.Status.APPROVED:
        return existing
    if existing is None and _expire_if_stale(proposal=proposal):
        return None
    verified, why = quorum_certificate_check(proposal=proposal)
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
        order_send(order=order, venue=venue)
    return order


def _expire_if_stale(*, proposal: Proposal) -> bool:
    """An approval is good for a bounded time. After a halt, re-enabling trading must not
    send orders approved long ago at prices nobody re-checked: they end `expired`, unsent."""
    limit = settings.CHRONOSX_APPROVAL_MAX_AGE_SECONDS
    age = (timezone.now() - vote_opened_at(proposal.decision)).total_seconds()
    if age <= limit:
        return False
    return proposal_transition(
        proposal_id=proposal.id,
        to=Proposal.Status.EXPIRED,
        only_from=(Proposal.Status.APPROVED,),
        actor=ACTOR,
        reason=f"approved {age:.0f} s ago, longer than the {limit:.0f} s an approval is good for; never sent",
    )


def _refuse(*, proposal_id, reason: str) -> None:
    """Audit a refusal once per proposal and reason: the sweeper retries, and must not flood the trail."""
    log.info("routing refused for %s: %s", proposal_id, reason)
    last = AuditEvent.objects.filter(proposal_id=proposal_id, kind="order.refused").order_by("-id").first()
    if last is not None and json.loads(last.payload).get("reason") == reason:
        return
    audit_record(kind="order.refused", actor=ACTOR, proposal_id=proposal_id, payload={"reason": reason})


def _claim(*, order_id, from_status: str, reason: str) -> bool:
    """Take the right to send: exactly one router wins the transition to `sending`."""
    return order_transition(
        order_id=order_id, to=O.SENDING, reason=reason, only_from=(from_status,), fields={"send_attempts": F("send_attempts") + 1}
    )


def _order_create_and_claim(*, proposal: Proposal, venue: Venue) -> Order | None:
    with transaction.atomic():
        refusal = routing_refusal_locked(proposal=proposal)
        if refusal:
            _refuse(proposal_id=proposal.id, reason=refusal)
            return None
        locked = (
            Proposal.objects.select_for_update()
            .filter(id=proposal.id, status=Proposal.Status.APPROVED)
            .values_list("id", flat=True)
            .first()
        )
        if locked is None:
            return None
        cid = client_order_id_for(proposal.id)
        # Under the proposal's lock no other router can write this order in between: a read
        # and an insert, without get_or_create's savepoint round trips.
        order = Order.objects.filter(client_order_id=cid).first()
        if order is None:
            order = Order.objects.create(
                client_order_id=cid,
                proposal=proposal,
                venue=venue.name,
                live=venue.live,
                symbol=proposal.instrument.symbol,
                side=proposal.side,
                order_type=proposal.order_type,
                quantity=order_quantity(proposal=proposal),
                limit_price=proposal.limit_price,
            )
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
        if not _claim(order_id=order.id, from_status=O.NEW, reason="claimed by a router"):
            return None
    # The claim moved the row under this transaction's lock: its new state is known here.
    order.status, order.send_attempts, order.proposal = O.SENDING, order.send_attempts + 1, proposal
    return order


def _backoff(attempt: int) -> None:
    time.sleep(settings.CHRONOSX_ROUTER_BACKOFF_SECONDS * (2**attempt))


def _venue_answer(order: Order, outcome: str, **details) -> None:
    audit_record(
        kind="order.venue_answer",
        actor=f"venue:{order.venue}",
        proposal_id=order.proposal_id,
        payload={"client_order_id": order.client_order_id, "attempt": order.send_attempts, "outcome": outcome, **details},
    )


def _mark_unknown(*, order: Order, reason: str) -> bool:
    return order_transition(
        order_id=order.id, to=O.UNKNOWN, reason=reason, only_from=(O.SENDING,), fields={"last_error": reason[:500]}
    )


def order_send(*, order: Order, venue: Venue) -> None:
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
        venue_call_failed(venue=venue.name, summary=f"markets: {exc.summary}")
        if order_transition(
            order_id=order.id, to=O.NEW, reason=f"not sent: {exc.summary}", only_from=(O.SENDING,),
            fields={"last_error": exc.summary[:500]},
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
            answer = venue_call(venue, "place", request=request)
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
                    order_reject(order_id=order.id, reason=exc.summary, only_from=(O.UNKNOWN,))
                return
            order_reject(order_id=order.id, reason=exc.summary)
            return
        except VenueUnknown as exc:
            _venue_answer(order, "unknown", error=exc.summary)
            if _mark_unknown(order=order, reason=exc.summary):
                order_resolve(order_id=order.id)
            return
        _venue_answer(order, "accepted", venue_order_id=answer.venue_order_id)
        order_transition(
            order_id=order.id, to=O.OPEN, reason="accepted by the venue", only_from=(O.SENDING,),
            fields={"venue_order_id": answer.venue_order_id, "last_error": ""},
        )
        order_refresh(order_id=order.id, hint=answer)
        return


def order_resolve(*, order_id, attempts: int | None = None, wait_first: bool = True, resend: bool = True) -> str:
    """Settle an order whose outcome is unknown: look it up by client order id (with backoff)
    and adopt what the venue has; resend (same client order id) only on a positive "no such order".

    Returns what happened: found | resent | not_found | unresolved | rejected | held | skipped.
    """
    order = Order.objects.select_related("proposal").get(id=order_id)
    if order.status != O.UNKNOWN:
        return "skipped"
    venue = venue_for(order.venue)
    attempts = settings.CHRONOSX_ROUTER_LOOKUP_ATTEMPTS if attempts is None else attempts
    for attempt in range(attempts):
        if wait_first or attempt:
            _backoff(attempt)
        try:
            found = venue_call(venue, "fetch_order_by_client_id", symbol=order.symbol, client_order_id=order.client_order_id)
        except VenueOrderNotFound:
            lookup_audit(order, "not_found")
            break
        except VenueUnavailable as exc:
            lookup_audit(order, "error", error=exc.summary)
            continue
        lookup_audit(order, "found", venue_order_id=found.venue_order_id)
        order_transition(
            order_id=order.id, to=O.OPEN, reason="found at the venue", only_from=(O.UNKNOWN,),
            fields={"venue_order_id": found.venue_order_id},
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
            only_from=(O.UNKNOWN,),
        )
        return "rejected"
    with transaction.atomic():
        refusal = routing_refusal_locked(proposal=order.proposal)
        if refusal:
            _refuse(proposal_id=order.proposal_id, reason=f"resend held: {refusal}")
            return "held"
        if not _claim(order_id=order.id, from_status=O.UNKNOWN, reason="venue has no such order: resend"):
            return "skipped"
        audit_record(
            kind="order.resend",
            actor=ACTOR,
            proposal_id=order.proposal_id,
            payload={"client_order_id": order.client_order_id, "reason": "venue has no such order"},
        )
    order_send(order=Order.objects.select_related("proposal__instrument").get(id=order.id), venue=venue)
    return "resent"
