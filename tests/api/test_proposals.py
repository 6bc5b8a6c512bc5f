"""POST / GET proposals: the happy paths, idempotent replays, exact decimals, lists."""

import uuid
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from chronosx import pipeline
from governance.engine import CHECK_ORDER
from governance.models import Proposal
from tests.builders import (
    NOT_BLOCKED,
    client_for,
    counts,
    make_agent,
    post_proposal,
    proposal_body,
)

URL = "/api/v1/proposals/"
PROPOSAL_KEYS = {
    "id", "strategy", "symbol", "side", "quantity", "order_type", "limit_price", "reference_price",
    "expected_slippage_bps", "confidence", "signal_time", "intent", "received_at", "status",
    "decision", "quorum", "orders",
}
DECISION_KEYS = {"outcome", "approved_quantity", "ruleset_version", "decided_at", "checks"}


def failed(decision):
    return [c["rule"] for c in decision["checks"] if not c["passed"]]


def test_a_post_answers_202_with_a_location_and_the_proposal(api):
    body = proposal_body()
    response = post_proposal(api, body)
    assert response.status_code == 202
    proposal = response.json()
    assert PROPOSAL_KEYS <= set(proposal)
    uuid.UUID(proposal["id"])
    assert response["Location"].endswith(f"/api/v1/proposals/{proposal['id']}/")
    assert response["Location"].startswith("http")
    for field in ("strategy", "symbol", "side", "quantity", "order_type", "limit_price", "reference_price"):
        assert proposal[field] == body[field]
    assert proposal["expected_slippage_bps"] == 1
    assert proposal["confidence"] == 0.95
    assert proposal["intent"] == "open"  # the default
    assert proposal["status"] in {s.value for s in Proposal.Status}
    assert isinstance(proposal["orders"], list)

    fetched = api.get(response["Location"])
    assert fetched.status_code == 200
    assert fetched.json()["id"] == proposal["id"]


def test_with_workers_a_new_proposal_is_answered_as_stored_without_reading_it_back(api, settings, monkeypatch):
    settings.EMBEDDED_TASKS = False  # workers decide it after the answer
    monkeypatch.setattr(pipeline, "after_commit", lambda *args, **kwargs: None)
    with CaptureQueriesContext(connection) as queries:
        response = post_proposal(api, proposal_body())
    # Read before the next request: each request clears the connection's query log.
    read_back = [q["sql"] for q in queries if '"governance_vote"' in q["sql"] or '"exchange_order"' in q["sql"]]
    assert read_back == []
    assert response.status_code == 202
    assert response.json() == api.get(response["Location"]).json()
    assert response.json()["decision"] is None and response.json()["orders"] == []


def test_the_decision_lists_every_check_in_contract_order(api):
    decision = post_proposal(api).json()["decision"]
    assert DECISION_KEYS <= set(decision)
    assert [c["rule"] for c in decision["checks"]] == list(CHECK_ORDER)
    assert isinstance(decision["ruleset_version"], int)
    assert decision["decided_at"]


def test_while_trading_is_halted_a_sound_proposal_is_blocked_by_trading_enabled_alone(api):
    proposal = post_proposal(api).json()
    assert proposal["status"] == "blocked"
    assert proposal["decision"]["outcome"] == "block"
    assert proposal["decision"]["approved_quantity"] is None
    assert failed(proposal["decision"]) == ["trading_enabled"]
    assert proposal["orders"] == []


def test_after_trading_is_enabled_a_sound_proposal_is_approved(api, trading_enabled):
    proposal = post_proposal(api).json()
    decision = proposal["decision"]
    assert decision["outcome"] == "approve"
    assert decision["approved_quantity"] == "0.0010"
    assert failed(decision) == []
    assert proposal["status"] in NOT_BLOCKED


def test_an_oversized_proposal_comes_back_modified_to_a_quantity_that_passes(api, trading_enabled):
    proposal = post_proposal(api, proposal_body(quantity="1000")).json()
    decision = proposal["decision"]
    assert decision["outcome"] == "modify"
    approved = Decimal(decision["approved_quantity"])
    assert Decimal("0.0001") <= approved < Decimal("1000")
    assert approved % Decimal("0.0001") == 0
    assert set(failed(decision)) <= {"max_order_notional", "max_position", "asset_exposure", "strategy_budget", "portfolio_exposure"}
    assert proposal["status"] in NOT_BLOCKED

    again = post_proposal(api, proposal_body(quantity=decision["approved_quantity"])).json()
    assert again["decision"]["outcome"] == "approve"


def test_a_close_is_blocked_in_alpha_mode(api, trading_enabled):
    proposal = post_proposal(api, proposal_body(intent="close", side="sell")).json()
    assert proposal["intent"] == "close"
    assert proposal["status"] == "blocked"
    assert "exits_enabled" in failed(proposal["decision"])


def test_a_disabled_instrument_is_accepted_and_blocked_by_its_check(api, trading_enabled):
    from governance.models import Instrument

    Instrument.objects.filter(symbol="BTCUSDT").update(enabled=False)
    response = post_proposal(api)
    assert response.status_code == 202
    assert failed(response.json()["decision"]) == ["instrument_enabled"]


# --- idempotency ---------------------------------------------------------------------


def test_the_same_key_and_body_again_answers_200_with_the_same_proposal_and_stores_nothing(api):
    body = proposal_body()
    first = post_proposal(api, body, key="retry-1")
    assert first.status_code == 202
    before = counts()
    again = post_proposal(api, body, key="retry-1")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert counts() == before


def test_the_same_body_with_its_keys_in_another_order_is_the_same_request(api):
    body = proposal_body()
    first = post_proposal(api, body, key="retry-2")
    reordered = dict(reversed(list(body.items())))
    again = post_proposal(api, reordered, key="retry-2")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


def test_idempotency_keys_belong_to_one_agent(api, seeded):
    _, token = make_agent()
    other = client_for(token)
    body = proposal_body()
    first = post_proposal(api, body, key="shared-key")
    second = post_proposal(other, body, key="shared-key")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]


def test_a_new_key_with_the_same_body_is_a_new_proposal(api):
    body = proposal_body()
    assert post_proposal(api, body, key="a-1").json()["id"] != post_proposal(api, body, key="a-2").json()["id"]


# --- exact decimals ------------------------------------------------------------------


def test_decimal_strings_keep_their_exact_value_and_scale_end_to_end(api, trading_enabled):
    body = proposal_body(quantity="0.0100", limit_price="65000.00", reference_price="65010.5")
    created = post_proposal(api, body).json()
    fetched = api.get(f"{URL}{created['id']}/").json()
    for proposal in (created, fetched):
        assert proposal["quantity"] == "0.0100"
        assert proposal["limit_price"] == "65000.00"
        assert proposal["reference_price"] == "65010.5"
    assert created["decision"]["approved_quantity"] == "0.0100"
    stored = Proposal.objects.get(id=created["id"])
    assert str(stored.quantity) == "0.0100"


def test_tiny_and_large_decimals_come_back_as_sent_without_exponents(api):
    body = proposal_body(limit_price="0.00000001", reference_price="0.00000001", quantity="12345678.9000")
    proposal = post_proposal(api, body).json()
    assert proposal["limit_price"] == "0.00000001"
    assert proposal["reference_price"] == "0.00000001"
    assert proposal["quantity"] == "12345678.9000"


def test_numbers_keep_their_value(api):
    proposal = post_proposal(api, proposal_body(expected_slippage_bps=2.5, confidence=0.8)).json()
    assert proposal["expected_slippage_bps"] == 2.5
    assert proposal["confidence"] == 0.8


# --- lists ---------------------------------------------------------------------------


def test_the_list_filters_by_strategy_and_status(seeded):
    from governance.services.controls import trading_enable

    agent, token = make_agent(("demo", "alt"))
    client = client_for(token)
    blocked_demo = [post_proposal(client).json()["id"] for _ in range(2)]
    blocked_alt = post_proposal(client, proposal_body(strategy="alt")).json()["id"]
    trading_enable(actor="test", reason="tests")
    passed_demo = post_proposal(client).json()
    assert passed_demo["decision"]["outcome"] == "approve"
    status_demo = passed_demo["status"]

    def ids(**params):
        response = client.get(URL, params)
        assert response.status_code == 200
        return {p["id"] for p in response.json()}

    assert ids() == {*blocked_demo, blocked_alt, passed_demo["id"]}
    assert ids(strategy="demo") == {*blocked_demo, passed_demo["id"]}
    assert ids(strategy="alt") == {blocked_alt}
    assert ids(status="blocked") == {*blocked_demo, blocked_alt}
    assert ids(strategy="demo", status="blocked") == set(blocked_demo)
    assert ids(strategy="demo", status=status_demo) == {passed_demo["id"]}
    assert ids(strategy="alt", status="expired") == set()


def test_the_list_is_newest_first_and_shaped_like_the_proposal(api):
    first = post_proposal(api).json()["id"]
    second = post_proposal(api).json()["id"]
    listed = api.get(URL).json()
    assert [p["id"] for p in listed][:2] == [second, first]
    assert PROPOSAL_KEYS <= set(listed[0])


def test_empty_filter_parameters_mean_no_filter(api):
    mine = post_proposal(api).json()["id"]
    response = api.get(URL + "?strategy=&status=")
    assert response.status_code == 200
    assert [p["id"] for p in response.json()] == [mine]


def test_a_post_without_the_trailing_slash_is_accepted_not_redirected(api):
    response = api.post("/api/v1/proposals", data=proposal_body(), format="json", HTTP_IDEMPOTENCY_KEY="no-slash")
    assert response.status_code == 202
    assert api.get(f"/api/v1/proposals/{response.json()['id']}").status_code == 200
