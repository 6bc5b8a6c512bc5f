"""Every path that locks an order and its proposal locks the proposal first. The reconciler
applying what the venue says (order_apply) beside a transition that moves the proposal
(order_transition) on the same order deadlocked while order_apply took the order first."""

import threading
import time
import uuid

import pytest
from django.db import connection, connections, transaction

from exchange.models import Order
from exchange.services.orders import order_apply, order_transition
from governance.models import Proposal
from tests.builders import approved_proposal, make_agent, seed
from tests.ci_services import service_missing  # fails instead of skipping under CI=true


@pytest.mark.django_db(transaction=True)
def test_order_apply_beside_a_transition_of_the_same_order_does_not_deadlock():
    if connection.vendor != "postgresql":
        service_missing("needs PostgreSQL row locks")
    seed(trading=True)
    agent, _ = make_agent()
    proposal = approved_proposal(agent=agent)
    Proposal.objects.filter(id=proposal.id).update(status=Proposal.Status.ROUTED)
    order = Order.objects.create(
        proposal=proposal, client_order_id=f"cx-{uuid.uuid4().hex[:20]}", venue="sandbox", live=False,
        symbol="BTCUSDT", side="buy", order_type="limit", quantity=proposal.quantity,
        limit_price=proposal.limit_price, status=Order.Status.OPEN,
    )
    errors, proposal_locked = [], threading.Event()

    def transition():  # a cancel settling: the proposal's row, then the order's (the window held open)
        try:
            with transaction.atomic():
                Proposal.objects.select_for_update().filter(id=proposal.id).first()
                proposal_locked.set()
                time.sleep(0.5)
                order_transition(order_id=order.id, to=Order.Status.CANCELLED, reason="test", only_from=(Order.Status.OPEN,))
        except Exception as exc:
            errors.append(("transition", exc))
        finally:
            connections.close_all()

    def apply():  # the reconciler's look at the same order meanwhile
        proposal_locked.wait()
        time.sleep(0.1)
        try:
            order_apply(order_id=order.id, state=None, fills=None)
        except Exception as exc:
            errors.append(("apply", exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=transition), threading.Thread(target=apply)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert Order.objects.get(id=order.id).status == Order.Status.CANCELLED
