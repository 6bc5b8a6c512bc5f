"""The router under trading states and pauses: in reduce-only only closes are sent; nothing of a
paused strategy or instrument is sent; each refusal audited with its reason."""

import json

import pytest

from exchange.models import Order
from exchange.services.sending import order_route
from governance.models import Instrument, Strategy
from governance.services.controls import pause_set, trading_reduce_only
from ledger.models import AuditEvent


def refusal(proposal):
    event = AuditEvent.objects.filter(kind="order.refused", proposal_id=proposal.id).latest("id")
    return json.loads(event.payload)["reason"]


@pytest.fixture
def resting_weex(weex):
    weex.fill_mode = "rest"  # a close with nothing to close must not fill into the ledger here
    return weex


def test_in_reduce_only_an_opening_order_is_not_sent_and_a_close_is(make_approved, certified, resting_weex):
    trading_reduce_only(actor="test", reason="unwinding")
    opening = make_approved()
    close = make_approved(side="sell", intent="close", limit_price="66000")

    assert order_route(proposal_id=opening.id) is None
    order_route(proposal_id=close.id)

    assert not Order.objects.filter(proposal=opening).exists()
    assert refusal(opening) == "trading is reduce-only: only closes are sent (unwinding)"
    assert Order.objects.get(proposal=close).status == "open"
    assert len(resting_weex.orders) == 1


@pytest.mark.parametrize("kind", ["strategy", "instrument"])
def test_nothing_of_a_paused_strategy_or_instrument_is_sent(make_approved, certified, resting_weex, kind):
    target = Strategy.objects.get(slug="demo") if kind == "strategy" else Instrument.objects.get(symbol="BTCUSDT")
    pause_set(target=target, paused=True, actor="test", reason="review 4")
    proposal = make_approved()

    assert order_route(proposal_id=proposal.id) is None

    name = "demo" if kind == "strategy" else "BTCUSDT"
    assert refusal(proposal) == f"{kind} {name} is paused: review 4"
    assert resting_weex.orders == {}

    pause_set(target=target, paused=False, actor="test", reason="done")
    order_route(proposal_id=proposal.id)
    assert Order.objects.get(proposal=proposal).status == "open"
