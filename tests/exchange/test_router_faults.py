"""Never twice, under load: over a hundred approved proposals routed to the WEEX test
server (real HTTP, real ccxt) while it times out after accepting, answers 5xx after
accepting, refuses before accepting, rate-limits, rejects and fills in part.

The server must end with exactly one order per proposal it accepted, each client
order id sent only as often as the fault forces (resends only after a positive
"no such order"), and every proposal final with its fills in the ledger."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from exchange.models import Order
from exchange.services.orders import client_order_id_for
from exchange.services.settling import orders_reconcile
from exchange.tasks import order_route_task
from governance.models import CircuitBreaker, Proposal
from ledger.models import Fill
from tests.builders import posts

# scenario: (create fault, lookup fault, fill mode, POSTs expected, orders stored, final proposal status)
SCENARIOS = [
    ("timeout_after_accept", None, "fill", 1, 1, "filled"),
    ("5xx_after_accept", None, "fill", 1, 1, "filled"),
    ("504_after_accept", None, "fill", 1, 1, "filled"),
    ("504_after_accept", "5xx", "fill", 1, 1, "filled"),
    ("5xx_after_accept", "timeout", "fill", 1, 1, "filled"),
    ("timeout_after_accept", None, "partial", 1, 1, "filled"),
    ("5xx_after_accept", None, "cancel_partial", 1, 1, "cancelled"),
    ("503_before_accept", None, "fill", 2, 1, "filled"),  # never got it: resent, same id
    ("429", None, "fill", 2, 1, "filled"),
    ("reject", None, "fill", 1, 0, "rejected"),
    ("insufficient", None, "fill", 1, 0, "rejected"),
    (None, None, "partial", 1, 1, "filled"),
    (None, None, "fill", 1, 1, "filled"),
]
ROUNDS = 8  # 13 scenarios x 8 = 104 proposals


@pytest.fixture
def fast_weex(weex, settings):
    settings.CHRONOSX_VENUE_TIMEOUT_MS = 150
    weex.timeout_sleep = 0.3
    return weex


def test_over_a_hundred_proposals_under_faults_each_reach_the_venue_once_and_end_final(
    make_approved, certified, fast_weex
):
    weex = fast_weex
    plan = []
    for round_ in range(ROUNDS):
        for n, scenario in enumerate(SCENARIOS):
            side = "buy" if (round_ + n) % 3 else "sell"
            proposal = make_approved(
                side=side,
                quantity=f"0.00{1 + (round_ + n) % 3}0",
                order_type="market" if n % 4 == 0 else "limit",
                limit_price="65000",
            )
            plan.append((proposal, scenario))

    for proposal, (fault, lookup_fault, fill_mode, *_rest) in plan:
        weex.fill_mode = fill_mode
        if fault:
            weex.inject(fault)
        if lookup_fault:
            weex.inject_lookup(lookup_fault)
        order_route_task(str(proposal.id))  # the task body, as a router worker runs it
    weex.fill_mode = "fill"

    # The venue fills what rested in part; the reconciler settles everything left open.
    for cid, order in weex.orders_by_client_id.items():
        if order["status"] == "NEW":
            weex.complete_partial(cid)
    orders_reconcile(now=timezone.now() + timedelta(seconds=60))

    sent = Counter(p.json()["newClientOrderId"] for p in posts(weex))
    statuses = Counter()
    for proposal, (fault, lookup_fault, fill_mode, want_posts, want_orders, want_status) in plan:
        cid = client_order_id_for(proposal.id)
        label = (fault, lookup_fault, fill_mode)
        proposal.refresh_from_db()
        statuses[proposal.status] += 1
        assert sent[cid] == want_posts, label
        assert weex.order_count(cid) == want_orders, label
        assert proposal.status == want_status, label
        assert proposal.status in Proposal.FINAL_STATUSES
        order = Order.objects.get(proposal=proposal)
        if not want_orders:
            assert order.status == "rejected" and not order.fills.exists()
            continue
        venue_order = weex.orders_by_client_id[cid]
        venue_trades = {str(t["id"]): t for t in weex.trades if t["orderId"] == venue_order["orderId"]}
        fills = {f.trade_id: f for f in Fill.objects.filter(order=order)}
        assert fills.keys() == venue_trades.keys(), label
        for trade_id, fill in fills.items():
            assert (fill.price, fill.quantity) == (venue_trades[trade_id]["price"], venue_trades[trade_id]["qty"])
        assert order.filled_quantity == venue_order["executedQty"] == sum(f.quantity for f in fills.values())
        assert order.venue_order_id == str(venue_order["orderId"])

    assert len(plan) >= 100
    assert sum(sent.values()) == weex.create_attempts == sum(s[3] for s in SCENARIOS) * ROUNDS
    assert len(weex.orders) == sum(s[4] for s in SCENARIOS) * ROUNDS
    assert statuses == {"filled": 10 * ROUNDS, "cancelled": ROUNDS, "rejected": 2 * ROUNDS}
    assert not CircuitBreaker.objects.filter(tripped=True).exists()
    assert weex.rejected_auth == 0
