"""The router against the WEEX test server (real HTTP, real ccxt) and the sandbox."""

import json
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from exchange.models import Order, SandboxOrder
from exchange.services.orders import client_order_id_for, order_refresh
from exchange.services.sending import _order_create_and_claim, order_route
from exchange.services.settling import orders_reconcile, orders_sweep
from exchange.venues import SandboxVenue, VenueUnavailable, venue_current
from governance.models import CircuitBreaker, Proposal
from governance.services.controls import breaker_trip, trading_halt
from ledger.models import AuditEvent, Fill, Position
from tests.builders import posts, posts_for
from tests.ci_services import service_missing  # fails instead of skipping under CI=true


def kinds(proposal):
    return list(AuditEvent.objects.filter(proposal_id=proposal.id).values_list("kind", flat=True))


def final(proposal):
    proposal.refresh_from_db()
    order = Order.objects.filter(proposal=proposal).first()
    return proposal.status, order and order.status


# --- the happy path -------------------------------------------------------------------


def test_it_routes_an_approved_proposal_to_weex_and_records_its_fills(make_approved, certified, weex):
    proposal = make_approved()

    order = order_route(proposal_id=proposal.id)

    assert final(proposal) == ("filled", "filled")
    order.refresh_from_db()
    assert (order.venue, order.live, order.filled_quantity, order.average_price) == ("weex", True, Decimal("0.001"), Decimal("65000"))
    [trade] = weex.trades
    [fill] = Fill.objects.filter(order=order)
    assert (fill.trade_id, fill.price, fill.quantity, fill.fee, fill.live) == (
        str(trade["id"]), Decimal("65000"), Decimal("0.001"), Decimal("0.065"), True,
    )
    assert certified == [proposal.id]
    for kind in ("order.created", "order.sent", "order.venue_answer", "order.status", "fill.recorded", "proposal.status"):
        assert kind in kinds(proposal)


def test_the_client_order_id_comes_from_the_proposal_id_and_is_sent_as_is(make_approved, certified, weex):
    proposal = make_approved()
    order_route(proposal_id=proposal.id)

    cid = client_order_id_for(proposal.id)
    assert cid == "cx-" + proposal.id.hex and len(cid) <= 40
    assert [p.json()["newClientOrderId"] for p in posts(weex)] == [cid]
    assert Order.objects.get(proposal=proposal).client_order_id == cid


def test_routing_an_already_routed_proposal_again_sends_nothing(make_approved, certified, weex):
    proposal = make_approved()
    order_route(proposal_id=proposal.id)
    order_route(proposal_id=proposal.id)
    order_route(proposal_id=proposal.id)
    assert len(posts(weex)) == 1 and Order.objects.count() == 1


def test_the_sandbox_venue_fills_and_marks_everything_not_live(make_approved, certified):
    proposal = make_approved(order_type="market", slippage="2")

    order = order_route(proposal_id=proposal.id)

    assert final(proposal) == ("filled", "filled")
    order.refresh_from_db()
    assert (order.venue, order.live, order.average_price) == ("sandbox", False, Decimal("65013"))
    [fill] = order.fills.all()
    assert fill.live is False and fill.trade_id == f"sbx-{order.client_order_id}-1"
    assert SandboxOrder.objects.get().live is False


def test_a_resting_sandbox_order_shows_routed(make_approved, certified):
    proposal = make_approved(limit_price="64000")
    order_route(proposal_id=proposal.id)
    assert final(proposal) == ("routed", "open")


# --- nothing reaches a venue without quorum, trading and breakers ---------------------


def test_without_a_quorum_certificate_nothing_reaches_the_venue(make_approved, weex):
    # governance's own certificate check: this proposal has no signed votes at all.
    proposal = make_approved()

    assert order_route(proposal_id=proposal.id) is None

    assert posts(weex) == [] and Order.objects.count() == 0
    assert final(proposal) == ("approved", None)
    assert "order.refused" in kinds(proposal)


def test_a_refused_certificate_means_no_venue_call(make_approved, weex, monkeypatch):
    monkeypatch.setattr(
        "exchange.services.sending.quorum_certificate_check", lambda *, proposal: (False, "2 of 3 required, 1 verifies")
    )
    proposal = make_approved()
    order_route(proposal_id=proposal.id)

    assert weex.requests == []  # not even the markets
    refusal = AuditEvent.objects.get(proposal_id=proposal.id, kind="order.refused")
    assert "1 verifies" in json.loads(refusal.payload)["reason"]


def test_with_trading_halted_nothing_reaches_the_venue(make_approved, certified, weex):
    trading_halt(actor="test", reason="maintenance")
    proposal = make_approved()

    order_route(proposal_id=proposal.id)

    assert posts(weex) == [] and Order.objects.count() == 0
    assert final(proposal) == ("approved", None)


def test_with_a_breaker_tripped_nothing_reaches_the_venue(make_approved, certified, weex):
    breaker_trip(name="venue_latency", actor="test", reason="slow")
    proposal = make_approved()

    order_route(proposal_id=proposal.id)

    assert posts(weex) == [] and Order.objects.count() == 0


def test_a_refusal_is_audited_once_however_often_the_sweeper_retries(make_approved, certified, weex):
    trading_halt(actor="test", reason="maintenance")
    proposal = make_approved()
    for _ in range(3):
        order_route(proposal_id=proposal.id)
    assert kinds(proposal).count("order.refused") == 1


def test_an_approval_older_than_its_lifetime_expires_unsent_when_trading_resumes(make_approved, certified, weex):
    from governance.models import Decision

    proposal = make_approved()
    trading_halt(actor="test", reason="halt")
    order_route(proposal_id=proposal.id)  # held: stays approved
    assert Proposal.objects.get(id=proposal.id).status == "approved"

    Decision.objects.filter(proposal=proposal).update(decided_at=timezone.now() - timedelta(seconds=600))
    from governance.services.controls import trading_enable

    trading_enable(actor="test", reason="resume")
    assert order_route(proposal_id=proposal.id) is None

    assert Proposal.objects.get(id=proposal.id).status == "expired"
    assert posts(weex) == [] and Order.objects.count() == 0
    event = AuditEvent.objects.filter(proposal_id=proposal.id, kind="proposal.status").order_by("-id").first()
    assert "never sent" in json.loads(event.payload)["reason"]


def test_halted_trading_holds_a_resend_too(make_approved, certified, weex):
    proposal = make_approved()
    weex.inject("503_before_accept")
    weex.inject_lookup("5xx", 3)  # the router cannot tell: it leaves the order unknown
    order_route(proposal_id=proposal.id)
    assert final(proposal) == ("approved", "unknown")

    trading_halt(actor="test", reason="stop")
    orders_reconcile(now=timezone.now() + timedelta(seconds=60))

    assert len(posts(weex)) == 1  # the venue says it has no such order, but trading is halted
    assert final(proposal) == ("approved", "unknown")


# --- never twice ------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["timeout_after_accept", "5xx_after_accept", "504_after_accept"])
def test_an_order_accepted_without_an_answer_is_looked_up_not_resent(make_approved, certified, weex, fault):
    proposal = make_approved()
    weex.inject(fault)

    order_route(proposal_id=proposal.id)

    cid = client_order_id_for(proposal.id)
    assert len(posts_for(weex, cid)) == 1 and weex.order_count(cid) == 1
    assert final(proposal) == ("filled", "filled")
    lookups = AuditEvent.objects.filter(proposal_id=proposal.id, kind="order.lookup")
    assert [json.loads(e.payload)["result"] for e in lookups] == ["found"]


def test_an_order_the_venue_never_got_is_resent_with_the_same_client_order_id(make_approved, certified, weex):
    proposal = make_approved()
    weex.inject("503_before_accept")

    order_route(proposal_id=proposal.id)

    cid = client_order_id_for(proposal.id)
    assert [p.json()["newClientOrderId"] for p in posts(weex)] == [cid, cid]
    assert weex.order_count(cid) == 1
    assert final(proposal) == ("filled", "filled")
    assert "order.resend" in kinds(proposal)


def test_a_429_is_honoured_with_backoff_and_the_same_client_order_id(make_approved, certified, weex):
    proposal = make_approved()
    weex.inject("429", count=2)

    order_route(proposal_id=proposal.id)

    cid = client_order_id_for(proposal.id)
    assert len(posts_for(weex, cid)) == 3 and weex.order_count(cid) == 1
    assert final(proposal) == ("filled", "filled")


@pytest.mark.parametrize("fault", ["reject", "insufficient"])
def test_a_rejected_order_ends_rejected_and_is_never_resent(make_approved, certified, weex, fault):
    proposal = make_approved()
    weex.inject(fault)

    order_route(proposal_id=proposal.id)
    orders_reconcile(now=timezone.now() + timedelta(seconds=60))

    assert len(posts(weex)) == 1
    assert final(proposal) == ("rejected", "rejected")
    assert Order.objects.get().last_error.startswith(("InvalidOrder", "InsufficientFunds"))


def test_when_every_look_up_fails_the_order_stays_unknown_until_the_reconciler_finds_it(make_approved, certified, weex):
    proposal = make_approved()
    weex.inject("timeout_after_accept")
    weex.inject_lookup("5xx", 3)

    order_route(proposal_id=proposal.id)
    assert final(proposal) == ("approved", "unknown")

    marked_at = Order.objects.get().updated_at
    orders_reconcile(now=marked_at)  # still within the router's own look-up window: left alone
    assert final(proposal) == ("approved", "unknown")
    orders_reconcile(now=timezone.now() + timedelta(seconds=60))

    assert final(proposal) == ("filled", "filled")
    assert len(posts(weex)) == 1


def test_a_dead_router_s_sending_order_is_looked_up_then_resent_once(make_approved, certified, weex, settings):
    proposal = make_approved()
    # The router died between claiming the order and sending it.
    _order_create_and_claim(proposal=proposal, venue=venue_current())
    assert final(proposal) == ("approved", "sending")

    orders_reconcile()  # not stale yet: another router may be sending right now
    assert posts(weex) == []
    orders_reconcile(now=timezone.now() + timedelta(seconds=settings.CHRONOSX_ORDER_STALE_SECONDS + 1))

    assert len(posts(weex)) == 1
    assert final(proposal) == ("filled", "filled")


def test_a_dead_router_s_order_that_did_reach_the_venue_is_adopted_not_resent(make_approved, certified, weex, settings):
    proposal = make_approved()
    order = _order_create_and_claim(proposal=proposal, venue=venue_current())
    # It sent, then died before writing down the answer.
    from exchange.venues import OrderRequest

    venue_current().place(
        request=OrderRequest(
            client_order_id=order.client_order_id, symbol="BTCUSDT", side="buy", order_type="limit",
            quantity=Decimal("0.001"), limit_price=Decimal("65000"), reference_price=Decimal("65000"),
            expected_slippage_bps=Decimal("1"),
        )
    )

    orders_reconcile(now=timezone.now() + timedelta(seconds=settings.CHRONOSX_ORDER_STALE_SECONDS + 1))

    assert len(posts(weex)) == 1
    assert final(proposal) == ("filled", "filled")


@pytest.mark.django_db(transaction=True)
def test_concurrent_routers_for_one_proposal_send_one_order(make_approved, certified, weex):
    if connection.vendor != "postgresql":
        service_missing("needs PostgreSQL row locks")
    proposal = make_approved()
    barrier = threading.Barrier(4)

    def route():
        barrier.wait()
        try:
            order_route(proposal_id=proposal.id)
        finally:
            connection.close()

    threads = [threading.Thread(target=route) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(posts(weex)) == 1
    assert final(proposal) == ("filled", "filled")


# --- quantities, partial fills, fills seen twice ------------------------------------------


def test_the_quantity_is_the_approved_quantity_rounded_down_to_the_venue(make_approved, certified, weex, settings):
    settings.CHRONOSX_WEEX_MARKET = "swap"  # BTCUSDT contracts step 0.001
    proposal = make_approved(quantity="0.0030", approved_quantity="0.0019")

    order_route(proposal_id=proposal.id)

    [post] = posts(weex)
    assert post.path == "/capi/v3/order" and post.json()["quantity"] == "0.001"
    assert Order.objects.get().quantity == Decimal("0.001")
    assert "order.rounded" in kinds(proposal)
    assert final(proposal) == ("filled", "filled")


def test_an_approved_quantity_below_the_venue_precision_is_rejected_unsent(make_approved, certified, weex, settings):
    settings.CHRONOSX_WEEX_MARKET = "swap"
    proposal = make_approved(quantity="0.0005")
    order_route(proposal_id=proposal.id)
    assert posts(weex) == []
    assert final(proposal) == ("rejected", "rejected")


def test_a_partial_fill_shows_partially_filled_until_the_rest_fills(make_approved, certified, weex):
    weex.fill_mode = "partial"
    proposal = make_approved(quantity="0.0020")

    order_route(proposal_id=proposal.id)
    assert final(proposal) == ("partially_filled", "partially_filled")
    assert Order.objects.get().filled_quantity == Decimal("0.001")

    weex.complete_partial(client_order_id_for(proposal.id))
    orders_reconcile()

    assert final(proposal) == ("filled", "filled")
    order = Order.objects.get()
    assert (order.filled_quantity, order.fills.count()) == (Decimal("0.002"), 2)


def test_partly_filled_then_cancelled_ends_cancelled_with_its_fills(make_approved, certified, weex):
    weex.fill_mode = "cancel_partial"
    proposal = make_approved(quantity="0.0020")
    order_route(proposal_id=proposal.id)
    assert final(proposal) == ("cancelled", "cancelled")
    assert Order.objects.get().filled_quantity == Decimal("0.001")


def test_a_fill_seen_twice_changes_nothing(make_approved, certified, weex):
    weex.fill_mode = "partial"
    proposal = make_approved(quantity="0.0020")
    order_route(proposal_id=proposal.id)
    order = Order.objects.get()
    before = (Fill.objects.count(), Position.objects.get().quantity, AuditEvent.objects.filter(kind="fill.recorded").count())

    order_refresh(order_id=order.id)
    orders_reconcile()

    after = (Fill.objects.count(), Position.objects.get().quantity, AuditEvent.objects.filter(kind="fill.recorded").count())
    assert before == after == (1, Decimal("0.001"), 1)


# --- sweeping ------------------------------------------------------------------------------


def test_the_sweeper_reroutes_approved_proposals_left_without_an_order(make_approved, certified, settings):
    stuck = make_approved()
    fresh = make_approved()
    Proposal.objects.filter(id=stuck.id).update(status_changed_at=timezone.now() - timedelta(minutes=5))

    counts = orders_sweep(now=timezone.now())

    assert counts == {"rerouted": 1}
    assert final(stuck) == ("filled", "filled")
    assert final(fresh) == ("approved", None)


# --- automatic breakers ----------------------------------------------------------------------


def test_consecutive_venue_rejects_trip_venue_errors_and_halt_routing_until_reset(make_approved, certified, weex, settings):
    settings.CHRONOSX_BREAKER_VENUE_ERRORS = 3
    weex.inject("reject", count=3)
    for _ in range(3):
        order_route(proposal_id=make_approved().id)
    assert CircuitBreaker.objects.get(name="venue_errors").tripped

    held = make_approved()
    order_route(proposal_id=held.id)
    assert len(posts(weex)) == 3 and final(held) == ("approved", None)

    call_command("breaker", "reset", "venue_errors", "--reason", "venue fixed", "--user", "ops", stdout=open("/dev/null", "w"))
    order_route(proposal_id=held.id)
    assert final(held) == ("filled", "filled")
    assert AuditEvent.objects.filter(kind="breaker.reset").exists()


def test_an_answer_between_errors_ends_the_streak(make_approved, certified, weex, settings):
    settings.CHRONOSX_BREAKER_VENUE_ERRORS = 2
    weex.inject("reject")
    order_route(proposal_id=make_approved().id)
    order_route(proposal_id=make_approved().id)  # fills
    weex.inject("reject")
    order_route(proposal_id=make_approved().id)
    assert not CircuitBreaker.objects.get(name="venue_errors").tripped


def test_a_slow_venue_trips_venue_latency(make_approved, certified, weex, settings):
    settings.CHRONOSX_BREAKER_VENUE_LATENCY_MS = 0
    order_route(proposal_id=make_approved().id)
    assert CircuitBreaker.objects.get(name="venue_latency").tripped
    held = make_approved()
    order_route(proposal_id=held.id)
    assert len(posts(weex)) == 1 and final(held) == ("approved", None)


def test_a_venue_fill_the_ledger_cannot_match_trips_reconciliation_mismatch(make_approved, certified, monkeypatch):
    # The venue says filled but lists no trades: the ledger cannot agree.
    monkeypatch.setattr(SandboxVenue, "fetch_fills", lambda self, *, symbol, venue_order_id: [])
    proposal = make_approved()

    order_route(proposal_id=proposal.id)

    breaker = CircuitBreaker.objects.get(name="reconciliation_mismatch")
    assert breaker.tripped and client_order_id_for(proposal.id) in breaker.reason
    assert final(proposal) == ("routed", "open")  # not final while the ledger disagrees
    assert order_route(proposal_id=make_approved().id) is None


def test_a_fill_the_ledger_refuses_trips_reconciliation_mismatch_instead_of_failing_forever(make_approved, certified):
    # A close with no open position: the venue fills it, the ledger cannot book it.
    proposal = make_approved(side="sell", intent="close", order_type="market")

    order_route(proposal_id=proposal.id)

    breaker = CircuitBreaker.objects.get(name="reconciliation_mismatch")
    assert breaker.tripped and "not booked" in breaker.reason
    assert Fill.objects.count() == 0
    order = Order.objects.get(proposal=proposal)
    assert order.status not in ("filled", "cancelled", "rejected")  # left for an operator, visibly
    assert order_refresh(order_id=order.id) is None  # a retry fails the same way, without raising


def test_breaker_command_lists_and_refuses_unknown_names(exch_seeded, capsys):
    breaker_trip(name="venue_errors", actor="test", reason="5 errors")
    call_command("breaker", "list")
    out = capsys.readouterr().out
    assert "venue_errors\tTRIPPED" in out and "venue_latency\tok" in out
    with pytest.raises(CommandError):
        call_command("breaker", "reset", "no_such_breaker", "--reason", "x")


def test_an_order_not_sent_because_the_markets_cannot_be_read_goes_back_to_new_and_says_which_attempt(
    make_approved, certified, monkeypatch
):
    def markets_down(self, *, symbol, quantity):
        raise VenueUnavailable("markets: connection refused")

    monkeypatch.setattr(SandboxVenue, "quantity_for", markets_down)
    proposal = make_approved()

    order_route(proposal_id=proposal.id)

    order = Order.objects.get(proposal=proposal)
    assert (order.status, order.send_attempts) == ("new", 1)
    answers = [json.loads(e.payload) for e in AuditEvent.objects.filter(proposal_id=proposal.id, kind="order.venue_answer")]
    assert [(a["outcome"], a["attempt"]) for a in answers] == [("not_sent", 1)]
