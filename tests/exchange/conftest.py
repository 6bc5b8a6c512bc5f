"""Fixtures for the execution-layer tests: approved proposals without the whole
pipeline, a quorum certificate switch, and the WEEX test server wired into settings."""

import uuid

import pytest

from governance.models import Agent, Strategy
from tests.builders import (
    API_KEY,
    PASSPHRASE,
    SECRET,
    approved_proposal,
    seed,
    weex_settings,
)
from tests.weex_server import WeexTestServer


@pytest.fixture(autouse=True)
def fast_router(settings):
    settings.CHRONOSX_ROUTER_BACKOFF_SECONDS = 0.005
    settings.CHRONOSX_ROUTER_LOOKUP_ATTEMPTS = 3
    settings.CHRONOSX_BREAKER_VENUE_ERRORS = 1000
    settings.CHRONOSX_BREAKER_VENUE_LATENCY_MS = 60_000
    settings.CHRONOSX_VENUE = "sandbox"


@pytest.fixture
def exch_seeded(db, commits):
    seed(trading=True)


@pytest.fixture
def certified(monkeypatch):
    """A valid quorum certificate for every proposal (the real check is governance's)."""
    calls = []

    def check(*, proposal):
        calls.append(proposal.id)
        return True, "test certificate"

    monkeypatch.setattr("exchange.services.sending.quorum_certificate_check", check)
    return calls


@pytest.fixture
def make_approved(exch_seeded):
    """Build `approved` proposals with their decisions directly, as the quorum stage leaves them."""
    agent = Agent.objects.create(name=f"agent-{uuid.uuid4().hex[:8]}", token_hash=uuid.uuid4().hex, token_prefix="x")
    agent.strategies.add(Strategy.objects.get(slug="demo"))
    return lambda **kwargs: approved_proposal(agent=agent, **kwargs)


@pytest.fixture
def weex(settings):
    """The WEEX test server on loopback, and settings that point the weex venue at it."""
    with WeexTestServer(api_key=API_KEY, secret=SECRET, passphrase=PASSPHRASE) as server:
        server.timeout_sleep = 0.5  # past the client's 250 ms timeout
        weex_settings(settings, server)
        yield server
