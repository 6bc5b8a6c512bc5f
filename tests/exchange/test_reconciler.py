"""The reconciler keeps the audit trail complete, not noisy, while an order cannot be looked up;
and the automatic breakers measure the venue, not the product's own load."""

import json
from datetime import timedelta

from django.utils import timezone

from exchange.models import Order
from governance.models import CircuitBreaker
from exchange.services.orders import client_order_id_for
from exchange.services.sending import order_route
from exchange.services.settling import orders_reconcile
from ledger.models import AuditEvent


def lookups(proposal):
    return [json.loads(e.payload) for e in AuditEvent.objects.filter(proposal_id=proposal.id, kind="order.lookup").order_by("id")]


def test_an_order_that_cannot_be_looked_up_for_a_hundred_passes_leaves_a_handful_of_events(make_approved, certified, weex):
    proposal = make_approved()
    weex.inject("timeout_after_accept")
    weex.inject_lookup("5xx", count=3 + 100)  # the router's own look-ups, then every reconciler pass
    order_route(proposal_id=proposal.id)
    assert Order.objects.get(proposal=proposal).status == "unknown"
    before = len(lookups(proposal))

    later = timezone.now() + timedelta(seconds=60)
    for n in range(100):
        orders_reconcile(now=later + timedelta(seconds=5 * n))

    recorded = lookups(proposal)[before:]
    # 103 identical failures in a row: recorded at the 1st, 2nd, 4th … 64th, each with its count.
    assert [event["repeats"] for event in recorded] == [4, 8, 16, 32, 64]
    assert Order.objects.get(proposal=proposal).lookup_repeats == 103

    orders_reconcile(now=later + timedelta(seconds=600))  # the venue answers again: recorded at once
    found = lookups(proposal)[-1]
    assert found["result"] == "found" and found["repeats"] == 1
    assert found["previous"]["repeats"] == 103 and '"result":"error"' in found["previous"]["outcome"]
    assert Order.objects.get(proposal=proposal).status == "filled"
    assert client_order_id_for(proposal.id) == Order.objects.get(proposal=proposal).client_order_id


def test_the_sandbox_never_trips_venue_latency_on_the_products_own_load(make_approved, certified, settings, monkeypatch):
    # The sandbox's "venue call" is this process's database work: slow when the product is busy.
    settings.CHRONOSX_BREAKER_VENUE_LATENCY_MS = 0
    proposal = make_approved()

    order_route(proposal_id=proposal.id)

    assert Order.objects.get(proposal=proposal).status == "filled"
    assert not CircuitBreaker.objects.filter(name="venue_latency", tripped=True).exists()


def test_a_slow_network_venue_still_trips_venue_latency(make_approved, certified, weex, settings):
    settings.CHRONOSX_BREAKER_VENUE_LATENCY_MS = 0
    proposal = make_approved()

    order_route(proposal_id=proposal.id)

    assert CircuitBreaker.objects.get(name="venue_latency").tripped
