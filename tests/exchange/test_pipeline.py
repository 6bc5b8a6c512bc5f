"""The whole embedded pipeline: an agent's proposal is decided, approved by the three
MPC nodes' signed votes, routed to the sandbox venue and filled, and the agent sees it."""

from decimal import Decimal

from exchange.models import Order
from ledger.models import Fill
from tests.builders import post_proposal, proposal_body


def test_a_posted_proposal_is_approved_routed_to_the_sandbox_and_filled(api, trading_enabled):
    created = post_proposal(api, proposal_body(order_type="market", limit_price=None, expected_slippage_bps=4))
    assert created.status_code == 202

    answer = api.get(f"/api/v1/proposals/{created.json()['id']}/").json()

    assert answer["quorum"]["met"] is True  # the real certificate, not a test double
    assert answer["status"] == "filled"
    [order] = answer["orders"]
    assert (order["venue"], order["live"], order["status"]) == ("sandbox", False, "filled")
    assert (order["quantity"], order["filled_quantity"], order["average_price"]) == ("0.0010", "0.001", "65026")
    [fill] = order["fills"]
    assert fill["trade_id"] == f"sbx-{order['client_order_id']}-1"
    assert (fill["price"], fill["fee"], fill["fee_asset"]) == ("65026", "0.065026", "USDT")
    assert Fill.objects.get().live is False and Order.objects.get().filled_quantity == Decimal("0.001")


def test_with_trading_halted_a_posted_proposal_never_reaches_the_sandbox(api, seeded):
    created = post_proposal(api)
    answer = api.get(f"/api/v1/proposals/{created.json()['id']}/").json()
    assert answer["status"] == "blocked" and answer["orders"] == []
    assert not Order.objects.exists()
