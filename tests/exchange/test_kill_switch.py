"""The kill switch against the WEEX test server (real HTTP, real ccxt) and the sandbox: halt, then
cancel every resting order once; a cancel of unknown outcome is looked up, never assumed."""

import io
import json
import time

import pytest
from django.core.management import call_command

from exchange.models import Order, SandboxOrder
from exchange.services.cancelling import order_cancel, orders_cancel_open
from exchange.services.orders import client_order_id_for
from exchange.services.sending import order_route
from exchange.services.settling import orders_reconcile
from exchange.venues import VenueRejected
from exchange.venues.ccxt_venue import CcxtVenue
from governance.models import Proposal, TradingState
from governance.services.controls import trading_enable
from ledger.models import AuditEvent
from tests.builders import posts, weex_settings


def kill(*extra):
    out = io.StringIO()
    call_command("trading", "kill", "--reason", "desk emergency", "--user", "ann", *extra, stdout=out, stderr=io.StringIO())
    return out.getvalue().splitlines()


@pytest.fixture
def resting(make_approved, certified, weex):
    """Three limit buys below the market, resting open at the WEEX test server."""
    weex.fill_mode = "rest"
    proposals = [make_approved(limit_price=price) for price in ("64000", "63000", "62000")]
    for proposal in proposals:
        order_route(proposal_id=proposal.id)
    assert [o.status for o in Order.objects.order_by("created_at")] == ["open"] * 3
    return proposals


def statuses():
    return [(o.status, Proposal.objects.get(id=o.proposal_id).status) for o in Order.objects.order_by("created_at")]


def test_the_kill_switch_halts_and_cancels_every_resting_order_with_one_cancel_request_each(resting, weex):
    lines = kill()

    assert lines[-2:] == ["cancelled: 3", "unknown: 0"]
    assert statuses() == [("cancelled", "cancelled")] * 3
    for proposal in resting:
        cid = client_order_id_for(proposal.id)
        assert len(weex.cancel_requests(cid)) == 1
        assert weex.orders_by_client_id[cid]["status"] == "CANCELED"
    assert len(weex.cancel_requests()) == 3
    state = TradingState.objects.get(pk=1)
    assert (state.state, state.reason, state.changed_by) == ("halted", "desk emergency", "operator:ann")
    killed = AuditEvent.objects.filter(kind="trading.killed").get()
    assert killed.actor == "operator:ann" and json.loads(killed.payload)["reason"] == "desk emergency"
    for order in Order.objects.all():
        moves = [json.loads(e.payload) for e in AuditEvent.objects.filter(kind="order.status", proposal_id=order.proposal_id)]
        assert [(m["from"], m["to"]) for m in moves][-2:] == [("open", "cancelling"), ("cancelling", "cancelled")]
        answers = AuditEvent.objects.filter(kind="order.cancel_answer", proposal_id=order.proposal_id)
        assert [json.loads(a.payload)["outcome"] for a in answers] == ["cancelled"]


def test_nothing_new_is_routed_after_a_kill(resting, make_approved, weex):
    waiting = make_approved()  # approved before the kill, not routed yet

    assert kill()[-3:] == ["cancelled: 3", "unknown: 0", "approvals withdrawn: 1"]

    waiting.refresh_from_db()
    assert waiting.status == "expired"
    sent = len(posts(weex))
    late = make_approved()

    assert order_route(proposal_id=late.id) is None
    orders_reconcile()

    assert len(posts(weex)) == sent
    assert not Order.objects.filter(proposal=late).exists()
    late.refresh_from_db()
    assert late.status == "approved"
    refused = AuditEvent.objects.filter(kind="order.refused", proposal_id=late.id).get()
    assert json.loads(refused.payload)["reason"] == "trading halted: desk emergency"

    trading_enable(actor="test", reason="back")  # an enable after the kill sends none of what was withdrawn
    assert order_route(proposal_id=waiting.id) is None
    assert len(posts(weex)) == sent and not Order.objects.filter(proposal=waiting).exists()


def test_a_cancel_that_times_out_is_marked_unknown_then_looked_up_and_settled_without_a_second_cancel(resting, weex):
    weex.inject_cancel("timeout_after_cancel")  # the first cancel is done at the venue, its answer lost

    lines = kill()

    assert lines[-2:] == ["cancelled: 2", "unknown: 1"]
    first = Order.objects.order_by("created_at").first()
    assert first.status == "cancel_unknown"
    assert Proposal.objects.get(id=first.proposal_id).status == "routed"  # never assumed cancelled

    orders_reconcile()

    first.refresh_from_db()
    assert first.status == "cancelled"
    assert statuses() == [("cancelled", "cancelled")] * 3
    assert len(weex.cancel_requests(first.client_order_id)) == 1
    lookups = [json.loads(e.payload)["result"] for e in AuditEvent.objects.filter(kind="order.lookup", proposal_id=first.proposal_id)]
    assert "cancel_found" in lookups


def test_a_cancel_lost_before_it_reached_the_venue_is_looked_up_and_sent_again(resting, weex):
    weex.inject_cancel("timeout_before_cancel")

    assert kill()[-2:] == ["cancelled: 2", "unknown: 1"]
    first = Order.objects.order_by("created_at").first()
    assert weex.orders_by_client_id[first.client_order_id]["status"] == "NEW"

    orders_reconcile()

    first.refresh_from_db()
    assert first.status == "cancelled"
    assert len(weex.cancel_requests(first.client_order_id)) == 2  # the lost one, and the one that landed


def test_an_unknown_cancel_whose_look_up_fails_stays_unknown_until_the_venue_answers(resting, weex):
    weex.inject_cancel("5xx_after_cancel")
    kill()
    first = Order.objects.order_by("created_at").first()
    weex.inject_lookup("5xx")

    orders_reconcile()

    first.refresh_from_db()
    assert first.status == "cancel_unknown"
    orders_reconcile()
    first.refresh_from_db()
    assert first.status == "cancelled" and len(weex.cancel_requests(first.client_order_id)) == 1


def test_an_order_that_filled_before_its_cancel_ends_filled_not_cancelled(resting, weex):
    first = Order.objects.order_by("created_at").first()
    weex.complete_partial(first.client_order_id)  # it trades at the venue before the cancel arrives

    lines = kill()

    assert lines[-3:] == ["cancelled: 2", "unknown: 0", "filled: 1"]
    first.refresh_from_db()
    assert first.status == "filled" and first.filled_quantity == first.quantity
    assert Proposal.objects.get(id=first.proposal_id).status == "filled"


def test_a_second_kill_sends_no_cancel_for_orders_already_cancelled(resting, weex):
    kill()
    assert kill()[-2:] == ["cancelled: 0", "unknown: 0"]
    assert len(weex.cancel_requests()) == 3


def test_the_kill_switch_cancels_a_resting_sandbox_order(make_approved, certified, settings):
    settings.CHRONOSX_VENUE = "sandbox"
    proposal = make_approved(limit_price="60000")  # below the reference price: it rests
    order_route(proposal_id=proposal.id)
    assert Order.objects.get(proposal=proposal).status == "open"

    assert kill()[-2:] == ["cancelled: 1", "unknown: 0"]

    assert SandboxOrder.objects.get().status == "cancelled"
    assert statuses() == [("cancelled", "cancelled")]


def test_a_cancel_is_sent_only_for_an_order_it_claimed(resting, weex):
    first = Order.objects.order_by("created_at").first()
    Order.objects.filter(id=first.id).update(status="cancelling")  # another process is cancelling it

    assert order_cancel(order_id=first.id, actor="test", reason="race") == "skipped"
    assert weex.cancel_requests(first.client_order_id) == []


def test_cancelling_open_orders_after_re_enabling_cancels_nothing_new(resting, weex):
    kill()
    trading_enable(actor="test", reason="back")
    assert dict(orders_cancel_open(actor="test", reason="again")) == {}


def test_the_kill_switch_cancels_resting_contract_orders_too(make_approved, certified, weex, settings):
    weex_settings(settings, weex, market="swap")
    weex.fill_mode = "rest"
    proposals = [make_approved(limit_price=price) for price in ("64000", "63000")]
    for proposal in proposals:
        order_route(proposal_id=proposal.id)

    assert kill()[-2:] == ["cancelled: 2", "unknown: 0"]

    assert statuses() == [("cancelled", "cancelled")] * 2
    assert [r.path for r in weex.cancel_requests()] == ["/capi/v3/order"] * 2


def test_an_order_whose_send_was_under_way_at_the_kill_is_cancelled_once_it_turns_out_to_rest(resting, weex):
    first = Order.objects.order_by("created_at").first()
    Order.objects.filter(id=first.id).update(status="unknown")  # its send's answer was lost; it rests there

    assert kill()[-3:] == ["cancelled: 2", "unknown: 0", "in flight: 1"]
    first.refresh_from_db()
    assert first.status == "unknown" and first.cancel_requested_at is not None
    assert weex.cancel_requests(first.client_order_id) == []

    time.sleep(0.1)  # past the router's own look-up window
    orders_reconcile()  # found at the venue: open
    orders_reconcile()  # open, and the kill asked for it: cancelled

    first.refresh_from_db()
    assert first.status == "cancelled"
    assert len(weex.cancel_requests(first.client_order_id)) == 1
    assert AuditEvent.objects.filter(kind="order.cancel_requested", proposal_id=first.proposal_id).count() == 1


def test_a_refused_cancel_leaves_the_order_open_reports_it_and_is_not_retried(resting, weex, monkeypatch):
    def refuse(self, *, symbol, client_order_id):
        raise VenueRejected("NotSupported: weex cancelOrder() is not supported in sandbox mode")

    monkeypatch.setattr(CcxtVenue, "cancel", refuse)
    first = Order.objects.order_by("created_at").first()
    Order.objects.filter(id=first.id).update(cancel_requested_at=first.created_at)

    assert kill()[-3:] == ["cancelled: 0", "unknown: 0", "refused: 3"]

    first.refresh_from_db()
    assert first.status == "open" and first.cancel_requested_at is None
    assert statuses() == [("open", "routed")] * 3
    answers = AuditEvent.objects.filter(kind="order.cancel_answer", proposal_id=first.proposal_id)
    assert [json.loads(a.payload)["outcome"] for a in answers] == ["refused"]


def test_a_kill_from_a_process_without_the_venues_credentials_halts_and_leaves_the_orders_as_they_were(resting, weex, settings):
    settings.WEEX_API_SECRET = None

    assert kill()[-3:] == ["cancelled: 0", "unknown: 0", "failed: 3"]

    assert TradingState.objects.get(pk=1).state == "halted"
    assert statuses() == [("open", "routed")] * 3
    assert weex.cancel_requests() == []
