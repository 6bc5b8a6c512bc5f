"""The exchange credentials never leave the execution layer: not in logs (ccxt's own
debug lines included), not in API answers, not in audit events, not in stored errors."""

import logging
from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from exchange.models import Order
from exchange.services.sending import order_route
from exchange.services.settling import orders_reconcile
from governance.models import CircuitBreaker, Proposal, VenueHealth
from governance.services.agents import agent_create
from ledger.models import AuditEvent
from tests.builders import API_KEY, PASSPHRASE, SECRET

WRONG_SECRET = "ts-WRONG-SECRET-0e7f19"


def test_credentials_appear_in_no_log_api_answer_or_audit_event(make_approved, certified, weex, settings, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("exchange", "exchange.ccxt", "ccxt", "urllib3", "celery"):
        caplog.set_level(logging.DEBUG, logger=name)

    proposals = []
    for fault, lookup in [(None, None), ("timeout_after_accept", None), ("5xx_after_accept", "5xx"), ("429", None),
                          ("reject", None), ("insufficient", None), ("503_before_accept", "timeout")]:
        if fault:
            weex.inject(fault)
        if lookup:
            weex.inject_lookup(lookup)
        proposals.append(make_approved())
        order_route(proposal_id=proposals[-1].id)
    # A refused signature (which trips venue_errors: its reason quotes the error), and a venue missing a credential.
    settings.CHRONOSX_BREAKER_VENUE_ERRORS = 1
    settings.WEEX_API_SECRET = WRONG_SECRET
    proposals.append(make_approved())
    order_route(proposal_id=proposals[-1].id)
    settings.WEEX_API_SECRET, settings.WEEX_API_PASSPHRASE = SECRET, None
    proposals.append(make_approved())
    order_route(proposal_id=proposals[-1].id)
    settings.WEEX_API_PASSPHRASE = PASSPHRASE
    orders_reconcile(now=timezone.now() + timedelta(seconds=60))

    _, token = agent_create(name="reader", strategy_slugs=["demo"], actor="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    answers = [client.get(f"/api/v1/proposals/{p.id}/") for p in proposals]
    answers.append(client.get("/api/v1/proposals/?strategy=demo"))
    answers.append(client.get("/api/v1/health/"))
    assert all(a.status_code in (200, 503) for a in answers)

    texts = {
        "logs": caplog.text,
        "api": "\n".join(a.content.decode() for a in answers),
        "audit": "\n".join(e.kind + " " + e.actor + " " + e.payload for e in AuditEvent.objects.all()),
        "orders": "\n".join(o.last_error for o in Order.objects.all()),
        "venue health": "\n".join(h.last_error for h in VenueHealth.objects.all()),
        "breakers": "\n".join(b.reason for b in CircuitBreaker.objects.all()),
    }
    for where, text in texts.items():
        for secret in (SECRET, PASSPHRASE, API_KEY, WRONG_SECRET):
            assert secret not in text, f"{secret} found in {where}"

    # The grep looked at the right things: ccxt logged its request headers (redacted),
    # the errors were recorded, the answers carry the orders.
    assert "ACCESS-PASSPHRASE" in texts["logs"] and "'ACCESS-KEY': '***'" in texts["logs"]
    assert "AuthenticationError: code -1047" in texts["orders"]
    assert "AuthenticationError: code -1047" in texts["breakers"]
    assert "missing credentials: passphrase" in texts["audit"]
    assert '"client_order_id"' in texts["api"] and '"trade_id"' in texts["api"]
    assert AuditEvent.objects.filter(kind="order.venue_answer").count() >= 8
    assert Proposal.objects.filter(status="filled").exists()
