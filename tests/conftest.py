import uuid
from datetime import datetime, timezone as dt_timezone

import pgtrigger
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from governance.services import agent_create


@pytest.fixture(autouse=True, scope="session")
def _flush_past_append_only_triggers():
    """Transactional tests empty the database with TRUNCATE, which the append-only
    triggers refuse (as they should for the application); let only that flush through."""
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self):
        with pgtrigger.ignore("ledger.AuditEvent:audit_event_no_truncate", "ledger.Fill:fill_no_truncate"):
            original(self)

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


@pytest.fixture(autouse=True)
def node_key_dir(tmp_path, settings):
    """Every test gets its own node key directory."""
    settings.CHRONOSX_NODE_KEY_DIR = tmp_path / "keys"
    return settings.CHRONOSX_NODE_KEY_DIR


@pytest.fixture
def seeded(transactional_db):
    # Transactional: the pipeline enqueues work with transaction.on_commit, which
    # a test wrapped in one big transaction would never reach.
    call_command("seed_demo", stdout=open("/dev/null", "w"))


@pytest.fixture
def trading_enabled(seeded):
    from governance.services import trading_enable

    trading_enable(actor="test", reason="tests")


def make_agent(strategies=("demo",)):
    return agent_create(name=f"agent-{uuid.uuid4().hex[:8]}", strategy_slugs=list(strategies), actor="test")


@pytest.fixture
def agent_token(seeded):
    return make_agent()


@pytest.fixture
def api(agent_token):
    """An API client authenticated as a fresh agent bound to `demo`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {agent_token[1]}")
    client.agent = agent_token[0]
    return client


def proposal_body(**overrides):
    """A sound BTCUSDT buy that passes every check of the demo ruleset."""
    body = {
        "strategy": "demo",
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": "0.0010",
        "order_type": "limit",
        "limit_price": "65000",
        "reference_price": "65000",
        "expected_slippage_bps": 1,
        "confidence": 0.95,
        "signal_time": datetime.now(dt_timezone.utc).isoformat(),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def post_proposal(client, body=None, key=None, **headers):
    return client.post(
        "/api/v1/proposals/",
        data=body if body is not None else proposal_body(),
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex,
        **headers,
    )
