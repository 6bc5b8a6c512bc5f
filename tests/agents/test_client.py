"""The Python client against the real server (pytest-django's live server, a real HTTP server
in a thread): a lost answer is retried with the same idempotency key and makes one proposal."""

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from governance.models import Proposal
from governance.services.controls import trading_enable
from tests.builders import make_agent, seed

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
import chronosx_client  # noqa: E402
from chronosx_client import Blocked, Client, Forbidden, GovernedExchange, Invalid, verify_receipt  # noqa: E402


class LoseFirstAnswers(HTTPAdapter):
    """Sends every request, but loses the answer to the first `lose` POSTs (a dropped connection
    after the server has done the work)."""

    def __init__(self, lose):
        super().__init__()
        self.lose, self.keys = lose, []

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if request.method == "POST":
            self.keys.append(request.headers["Idempotency-Key"])
            if self.lose:
                self.lose -= 1
                raise requests.ConnectionError("answer lost")
        return response


@pytest.fixture
def server(live_server, transactional_db):
    seed()
    agent, token = make_agent(("demo",))
    return live_server.url, token


def proposal(**overrides):
    body = dict(
        strategy="demo", symbol="BTCUSDT", side="buy", quantity="0.0010", order_type="limit", limit_price="65000",
        reference_price="65000", expected_slippage_bps=1, confidence=0.95,
        signal_time=datetime.now(timezone.utc).isoformat(),
    )
    body.update(overrides)
    return body


def test_a_lost_answer_is_retried_with_the_same_key_and_makes_exactly_one_proposal(server):
    url, token = server
    adapter = LoseFirstAnswers(lose=2)
    client = Client(url, token, backoff=0.01)
    client.session.mount(url, adapter)

    answer = client.propose(**proposal())

    assert len(adapter.keys) == 3 and len(set(adapter.keys)) == 1
    assert Proposal.objects.count() == 1 and answer["id"] == str(Proposal.objects.get().id)


def test_each_proposal_gets_its_own_key(server):
    url, token = server
    client = Client(url, token)
    first, second = client.propose(**proposal()), client.propose(**proposal())
    assert first["id"] != second["id"] and Proposal.objects.count() == 2


def test_errors_come_as_the_envelopes_codes(server):
    url, token = server
    client = Client(url, token)
    with pytest.raises(Invalid) as invalid:
        client.propose(**proposal(quantity="-1"))
    assert invalid.value.status == 400 and "quantity" in invalid.value.fields
    with pytest.raises(Forbidden):
        client.propose(**proposal(strategy="not-mine"))
    with pytest.raises(chronosx_client.NotAuthenticated):
        Client(url, "cx_wrong").proposals()


def test_wait_a_receipt_that_verifies_and_the_ccxt_shaped_order_entry(server):
    url, token = server
    trading_enable(reason="client test", actor="test")
    client = Client(url, token)

    answer = client.propose(**proposal(), wait=10)
    assert answer["status"] == "filled"
    assert verify_receipt(client.receipt(answer["id"]), client.node_keys())

    exchange = GovernedExchange(client, strategy="demo")
    order = exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 65000, {"confidence": 0.95})
    assert order["status"] == "closed" and order["amount"] == 0.001 and order["filled"] == 0.001
    assert order["id"] == order["info"]["id"]
    cut = exchange.create_order("BTC/USDT", "limit", "buy", 1000, 65000, {"confidence": 0.95})
    assert cut["amount"] < 1 and cut["info"]["decision"]["outcome"] == "modify"
    with pytest.raises(Blocked) as blocked:
        exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 65000, {"confidence": 0.1})
    assert [check["rule"] for check in blocked.value.checks] == ["min_confidence"]
