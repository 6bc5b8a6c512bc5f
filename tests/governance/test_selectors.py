"""Reads on the hot path (every evaluation and every portfolio vote) stay constant-cost."""

import uuid
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.models import Decision, Instrument, Proposal, Ruleset, Strategy
from governance.selectors.context import decision_context


def open_proposal(agent, status="approved", quantity="0.0100"):
    now = timezone.now()
    proposal = Proposal.objects.create(
        agent=agent, strategy=Strategy.objects.get(slug="demo"), instrument=Instrument.objects.get(symbol="BTCUSDT"),
        side="buy", quantity=Decimal(quantity), order_type="limit", limit_price=Decimal("65000"),
        reference_price=Decimal("65000"), expected_slippage_bps=Decimal("1"), confidence=Decimal("0.9"),
        signal_time=now, received_at=now, status=status, status_changed_at=now,
        idempotency_key=uuid.uuid4().hex, request_hash="0" * 64,
    )
    ruleset = Ruleset.objects.filter(status="published").first()
    Decision.objects.create(
        proposal=proposal, outcome="approve", approved_quantity=Decimal(quantity), ruleset=ruleset,
        ruleset_version=ruleset.version, decided_at=now, checks=[], inputs={}, digest="0" * 64,
    )
    return proposal


def context_queries(proposal):
    with CaptureQueriesContext(connection) as queries:
        context = decision_context(proposal=proposal, trading_state="enabled", trading_reason="")
    return len(queries), context


def test_the_exposure_context_costs_the_same_queries_however_many_proposals_are_open(agent_token):
    agent = agent_token[0]
    subject = open_proposal(agent, status="pending")
    for _ in range(2):
        open_proposal(agent)
    few, context = context_queries(subject)
    assert Decimal(context["asset_exposure"]) == Decimal("1300")  # 2 × 0.01 × 65,000 reserved

    for _ in range(20):
        open_proposal(agent)
    many, context = context_queries(subject)
    assert Decimal(context["asset_exposure"]) == Decimal("14300")  # 22 reserved
    assert many == few
