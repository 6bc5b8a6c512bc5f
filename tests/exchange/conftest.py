"""Builders for the execution-layer tests: approved proposals without the whole
pipeline, a quorum certificate switch, and the WEEX test server wired into settings."""

import uuid
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.core.management import call_command

from tests.weex_server import WeexTestServer

# Distinctive, so a grep for them cannot match anything else.
API_KEY = "tk-3b9e61f0c2d7"
SECRET = "ts-SECRET-8f4a2c6e1d9b"
PASSPHRASE = "tp-PASS-5c0d7e3a9f"


@pytest.fixture(autouse=True)
def fast_router(settings):
    settings.CHRONOSX_ROUTER_BACKOFF_SECONDS = 0.005
    settings.CHRONOSX_ROUTER_LOOKUP_ATTEMPTS = 3
    settings.CHRONOSX_BREAKER_VENUE_ERRORS = 1000
    settings.CHRONOSX_BREAKER_VENUE_LATENCY_MS = 60_000
    settings.CHRONOSX_VENUE = "sandbox"


@pytest.fixture
def exch_seeded(db):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    from governance.services import trading_enable

    trading_enable(actor="test", reason="tests")


@pytest.fixture
def certified(monkeypatch):
    """A valid quorum certificate for every proposal (the real check is governance's)."""
    calls = []

    def verify(*, proposal):
        calls.append(proposal.id)
        return True, "test certificate"

    monkeypatch.setattr("governance.quorum.quorum_certificate_verify", verify)
    return calls


@pytest.fixture
def make_approved(exch_seeded):
    """Build an `approved` proposal with its decision directly, as the quorum stage leaves it."""
    from governance.models import Agent, Decision, Instrument, Proposal, Ruleset, Strategy

    agent = Agent.objects.create(name=f"agent-{uuid.uuid4().hex[:8]}", token_hash=uuid.uuid4().hex, token_prefix="x")
    strategy = Strategy.objects.get(slug="demo")
    agent.strategies.add(strategy)
    ruleset = Ruleset.objects.filter(status="published").first()

    def build(
        *,
        symbol="BTCUSDT",
        side="buy",
        quantity="0.0010",
        approved_quantity=None,
        order_type="limit",
        limit_price="65000",
        reference_price="65000",
        slippage="1",
        intent="open",
    ):
        now = datetime.now(dt_timezone.utc)
        proposal = Proposal.objects.create(
            agent=agent,
            strategy=strategy,
            instrument=Instrument.objects.get(symbol=symbol),
            side=side,
            quantity=Decimal(quantity),
            order_type=order_type,
            limit_price=None if order_type == "market" else Decimal(limit_price),
            reference_price=Decimal(reference_price),
            expected_slippage_bps=Decimal(slippage),
            confidence=Decimal("0.9"),
            signal_time=now,
            intent=intent,
            received_at=now,
            status=Proposal.Status.APPROVED,
            status_changed_at=now,
            idempotency_key=uuid.uuid4().hex,
            request_hash="0" * 64,
        )
        Decision.objects.create(
            proposal=proposal,
            outcome="approve" if approved_quantity is None else "modify",
            approved_quantity=Decimal(approved_quantity or quantity),
            ruleset=ruleset,
            ruleset_version=ruleset.version,
            decided_at=now,
            checks=[],
            inputs={},
            digest="0" * 64,
        )
        return proposal

    return build


def weex_settings(settings, server, *, market="spot", timeout_ms=250):
    settings.CHRONOSX_VENUE = "weex"
    settings.WEEX_API_KEY = server.api_key
    settings.WEEX_API_SECRET = server.secret
    settings.WEEX_API_PASSPHRASE = server.passphrase
    settings.WEEX_BASE_URL = server.url
    settings.WEEX_DEMO = False
    settings.CHRONOSX_WEEX_MARKET = market
    settings.CHRONOSX_VENUE_TIMEOUT_MS = timeout_ms
    settings.CHRONOSX_VENUE_RATE_LIMIT = False


@pytest.fixture
def weex(settings):
    """The WEEX test server on loopback, and settings that point the weex venue at it."""
    with WeexTestServer(api_key=API_KEY, secret=SECRET, passphrase=PASSPHRASE) as server:
        server.timeout_sleep = 0.5  # past the client's 250 ms timeout
        weex_settings(settings, server)
        yield server


def posts(server, path=None):
    return [r for r in server.requests if r.method == "POST" and (path is None or r.path == path)]


def posts_for(server, client_order_id):
    return [r for r in posts(server) if (r.json() or {}).get("newClientOrderId") == client_order_id]
