"""A hostile or careless agent cannot poison the system: every input is bounded before it
touches the database, refused with a 4xx in the envelope, and nothing is stored."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.db import IntegrityError
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from governance.models import Proposal
from tests.builders import (
    assert_error,
    counts,
    nothing_stored,
    post_proposal,
    proposal_body,
)

URL = "/api/v1/proposals/"


def test_a_year_one_signal_time_is_refused_and_every_read_still_works(api, admin_client):
    with nothing_stored():
        response = post_proposal(api, proposal_body(signal_time="0001-01-01T00:00:00+14:00"))
    assert_error(response, 400, "invalid", fields=["signal_time"])

    assert api.get(URL).status_code == 200
    assert admin_client.get("/admin/governance/proposal/").status_code == 200
    assert admin_client.get("/dashboard/partials/proposals/").status_code == 200


@pytest.mark.parametrize(
    "signal_time",
    [
        (datetime.now(timezone.utc) - timedelta(days=7, minutes=1)).isoformat(),
        "9999-12-31T23:59:59-14:00",
    ],
    ids=["older-than-7-days", "year-9999"],
)
def test_a_signal_time_outside_the_window_is_refused(api, signal_time):
    with nothing_stored():
        response = post_proposal(api, proposal_body(signal_time=signal_time))
    assert_error(response, 400, "invalid", fields=["signal_time"])


def test_a_stale_signal_inside_the_window_is_decided_and_blocked_by_signal_age(api, trading_enabled):
    response = post_proposal(api, proposal_body(signal_time=(datetime.now(timezone.utc) - timedelta(days=6)).isoformat()))
    body = response.json()
    assert response.status_code == 202 and body["status"] == "blocked"
    assert [c["rule"] for c in body["decision"]["checks"] if not c["passed"]] == ["signal_age"]


def test_the_database_refuses_a_time_no_reader_could_load(api):
    proposal = Proposal.objects.first() or Proposal.objects.get(id=post_proposal(api).json()["id"])
    with pytest.raises(IntegrityError):
        Proposal.objects.filter(id=proposal.id).update(signal_time=datetime(1, 1, 1, tzinfo=timezone.utc))


def test_json_nested_a_thousand_deep_is_refused_with_400(api):
    body = '{"strategy": ' + "[" * 1000 + "]" * 1000 + "}"
    with nothing_stored():
        response = api.post(URL, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="deep")
    assert_error(response, 400, "invalid")
    assert "nested deeper" in response.json()["error"]["message"]


@pytest.mark.parametrize("field", ["strategy", "symbol", "signal_time"])
@pytest.mark.parametrize("text", ["\u0000", "demo\u0000", "BTC\u0007USDT", "\u009b"], ids=["nul", "trailing-nul", "bell", "c1"])
def test_control_characters_are_refused_not_stored(api, field, text):
    with nothing_stored():
        response = post_proposal(api, proposal_body(**{field: text}))
    assert_error(response, 400, "invalid", fields=[field])


def test_a_nul_in_the_list_filter_is_refused(api):
    assert_error(api.get(URL, {"strategy": "demo\u0000"}), 400, "invalid", fields=["strategy"])


@pytest.mark.parametrize("field", ["strategy", "symbol", "side", "intent", "signal_time", "an unknown field"])
@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\ud83d"], ids=["high", "low", "cut-pair"])
def test_an_unpaired_surrogate_is_refused_as_malformed_json(api, field, escape):
    # Valid JSON, but no character: it was looked up in the database, or echoed back in an
    # error message, and UTF-8 refused it there (a 500). Hypothesis' text never draws one.
    text = json.dumps(proposal_body(**{field: "PLACEHOLDER"})).replace("PLACEHOLDER", escape)
    with nothing_stored():
        response = api.post(URL, data=text, content_type="application/json", HTTP_IDEMPOTENCY_KEY="surrogate")
    assert_error(response, 400, "invalid")
    assert "unpaired surrogate" in response.json()["error"]["message"]


def test_a_surrogate_pair_is_one_character_and_taken_as_sent(api):
    text = json.dumps(proposal_body(strategy="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud83d\\ude00")
    assert_error(api.post(URL, data=text, content_type="application/json", HTTP_IDEMPOTENCY_KEY="pair"), 403, "forbidden")


@pytest.mark.parametrize(
    "field, text",
    [
        ("quantity", "１２"),  # full-width digits: Decimal would read 12
        ("quantity", "٠٫٥"),  # Arabic-Indic digits
        ("quantity", "+0.0010"),
        ("quantity", ".0010"),
        ("quantity", "10."),
        ("limit_price", "65000.0.0"),
        ("reference_price", "6\u00a05000"),
    ],
)
def test_decimals_in_anything_but_ascii_digits_are_refused(api, field, text):
    with nothing_stored():
        response = post_proposal(api, proposal_body(**{field: text}))
    assert_error(response, 400, "invalid", fields=[field])


def test_a_symbol_with_a_trailing_space_is_refused_not_trimmed(api):
    with nothing_stored():
        response = post_proposal(api, proposal_body(symbol="BTCUSDT "))
    assert_error(response, 400, "invalid", fields=["symbol"])


def test_a_strategy_is_taken_exactly_as_sent(api):
    with nothing_stored():
        response = post_proposal(api, proposal_body(strategy=" demo"))
    assert_error(response, 403, "forbidden")


# --- the whole API under generated input --------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
field_values = {
    "strategy": st.sampled_from(["demo", "other", "", "DEMO"]) | st.text(max_size=70),
    "symbol": st.sampled_from(["BTCUSDT", "ETHUSDT", "XYZ"]) | st.text(max_size=40),
    "side": st.sampled_from(["buy", "sell", "BUY"]) | st.text(max_size=5),
    "quantity": st.sampled_from(["0.0010", "0", "-1", "1000", "0.00001"]) | st.text(max_size=40) | st.integers(),
    "order_type": st.sampled_from(["limit", "market"]) | st.text(max_size=8),
    "limit_price": st.sampled_from(["65000", None]) | st.text(max_size=40),
    "reference_price": st.sampled_from(["65000", "0"]) | st.text(max_size=40),
    "expected_slippage_bps": st.integers(min_value=-10, max_value=10**40) | st.floats(allow_nan=False) | st.text(max_size=5),
    "confidence": st.floats(min_value=-1, max_value=2, allow_nan=False) | st.integers() | st.text(max_size=5),
    "signal_time": st.sampled_from([datetime.now(timezone.utc).isoformat(), "0001-01-01T00:00:00+14:00", "2026-13-40"])
    | st.text(max_size=40),
    "intent": st.sampled_from(["open", "close"]) | st.text(max_size=6),
}


@st.composite
def proposal_bodies(draw):
    body = proposal_body()
    for field, values in field_values.items():
        choice = draw(st.sampled_from(["keep", "drop", "change", "json"]))
        if choice == "drop":
            body.pop(field, None)
        elif choice == "change":
            body[field] = draw(values)
        elif choice == "json":
            body[field] = draw(json_values)
    if draw(st.booleans()):
        body[draw(st.text(max_size=10))] = draw(json_values)
    return body


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=proposal_bodies(), key=st.text(max_size=70), raw=st.booleans())
def test_no_generated_request_gets_a_5xx_and_nothing_is_stored_unless_it_is_accepted(api, body, key, raw):
    before = counts()
    data = json.dumps(body) if not raw else json.dumps(body)[: len(json.dumps(body)) // 2]
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key.isascii() else {}
    response = api.post(URL, data=data, content_type="application/json", **headers)
    assert response.status_code < 500, response.content
    assert response["Content-Type"].startswith("application/json")
    if response.status_code >= 300:
        assert list(response.json()) == ["error"]
        assert counts() == before
