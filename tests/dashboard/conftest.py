"""Dashboard test data: proposals through the real API pipeline, orders and fills
written the way the execution layer writes them (an Order row, then ledger.fill_record)."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from exchange.models import Order
from governance.models import Proposal
from governance.services import trading_enable, trading_halt
from ledger.services import fill_record
from tests.conftest import post_proposal, proposal_body


def order_with_fill(*, proposal, live: bool, trade_id: str, fee="0.0325", venue=None):
    """An order for `proposal` filled once at its limit price."""
    venue = venue or ("weex" if live else "sandbox")
    order = Order.objects.create(
        proposal=proposal,
        client_order_id=f"cx-{uuid.uuid4().hex[:20]}",
        venue=venue,
        live=live,
        symbol=proposal.instrument.symbol,
        side=proposal.side,
        order_type=proposal.order_type,
        quantity=proposal.quantity,
        limit_price=proposal.limit_price,
        status=Order.Status.FILLED,
        filled_quantity=proposal.quantity,
        average_price=proposal.limit_price,
    )
    fill_record(
        order=order,
        trade_id=trade_id,
        price=proposal.limit_price,
        quantity=proposal.quantity,
        fee=Decimal(fee),
        fee_asset="USDT",
        filled_at=timezone.now(),
    )
    return order


@pytest.fixture
def staff_user(django_user_model, seeded):
    return django_user_model.objects.create_user(username="operator", password="op-pass-123", is_staff=True)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def trace_data(api):
    """A proposal blocked because trading is halted, then an approved one with a sandbox fill."""
    trading_halt(actor="ops-alice", reason="maintenance window")
    blocked_id = post_proposal(api).json()["id"]
    trading_enable(actor="ops-bob", reason="window over")
    approved_id = post_proposal(api, body=proposal_body(quantity="0.0020")).json()["id"]
    approved = Proposal.objects.select_related("instrument").get(id=approved_id)
    order = order_with_fill(proposal=approved, live=False, trade_id="sbx-trade-1")
    return {"blocked_id": blocked_id, "approved_id": approved_id, "order": order}
