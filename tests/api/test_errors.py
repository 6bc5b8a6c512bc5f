"""Every row of CONTRACT.md's error table, produced by the matching bad request, in
the one envelope, and nothing stored for the refused request."""

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from governance.auth import AgentRateThrottle
from tests.builders import assert_error, nothing_stored, post_proposal, proposal_body

URL = "/api/v1/proposals/"


@pytest.fixture
def seeded(db):
    """Seeded inside the test's transaction (fast on PostgreSQL: no TRUNCATE after each
    test). Refused requests never reach the pipeline, and an accepted one here just
    stays pending: its after-commit evaluation never runs, which none of these need."""
    call_command("seed_demo", stdout=io.StringIO())


def in_seconds(seconds):
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def without(field):
    body = proposal_body()
    del body[field]
    return body


# --- 400 invalid ------------------------------------------------------------------

INVALID_BODIES = [
    # missing fields
    *[pytest.param(without(f), f, id=f"missing-{f}") for f in (
        "strategy", "symbol", "side", "quantity", "order_type", "reference_price",
        "expected_slippage_bps", "confidence", "signal_time",
    )],
    # malformed decimals
    pytest.param(proposal_body(quantity="abc"), "quantity", id="decimal-garbage"),
    pytest.param(proposal_body(quantity="1e-3"), "quantity", id="decimal-exponent"),
    pytest.param(proposal_body(quantity=" 0.0010"), "quantity", id="decimal-whitespace"),
    pytest.param(proposal_body(quantity=""), "quantity", id="decimal-empty"),
    pytest.param(proposal_body(quantity="NaN"), "quantity", id="decimal-nan"),
    pytest.param(proposal_body(reference_price="Infinity"), "reference_price", id="decimal-infinity"),
    pytest.param(proposal_body(limit_price="65,000"), "limit_price", id="decimal-comma"),
    # a JSON number where a decimal string is required
    pytest.param(proposal_body(quantity=0.001), "quantity", id="number-for-quantity"),
    pytest.param(proposal_body(quantity=1), "quantity", id="integer-for-quantity"),
    pytest.param(proposal_body(limit_price=65000), "limit_price", id="number-for-limit-price"),
    pytest.param(proposal_body(reference_price=65000.5), "reference_price", id="number-for-reference-price"),
    # out of range
    pytest.param(proposal_body(quantity="0"), "quantity", id="quantity-zero"),
    pytest.param(proposal_body(quantity="-0.0010"), "quantity", id="quantity-negative"),
    pytest.param(proposal_body(reference_price="0"), "reference_price", id="reference-price-zero"),
    pytest.param(proposal_body(confidence=1.01), "confidence", id="confidence-above-1"),
    pytest.param(proposal_body(confidence=-0.01), "confidence", id="confidence-below-0"),
    pytest.param(proposal_body(confidence="0.9"), "confidence", id="confidence-as-string"),
    pytest.param(proposal_body(confidence=True), "confidence", id="confidence-as-boolean"),
    pytest.param(proposal_body(expected_slippage_bps=-1), "expected_slippage_bps", id="slippage-negative"),
    # enumerations and types
    pytest.param(proposal_body(side="hold"), "side", id="side"),
    pytest.param(proposal_body(order_type="stop"), "order_type", id="order-type"),
    pytest.param(proposal_body(intent="reduce"), "intent", id="intent"),
    pytest.param(proposal_body(strategy=123), "strategy", id="strategy-as-number"),
    pytest.param(proposal_body(symbol=["BTCUSDT"]), "symbol", id="symbol-as-list"),
    # unknown fields are refused, not ignored
    pytest.param(proposal_body(leverage="10"), "leverage", id="unknown-field"),
    # limit_price: required for limit, refused for market
    pytest.param(without("limit_price"), "limit_price", id="limit-without-limit-price"),
    pytest.param(proposal_body(order_type="market"), "limit_price", id="market-with-limit-price"),
    # signal_time
    pytest.param(proposal_body(signal_time="2099-01-01T00:00:00+00:00"), "signal_time", id="signal-time-in-the-future"),
    pytest.param(proposal_body(signal_time="2026-11-25T12:00:00"), "signal_time", id="signal-time-without-offset"),
    pytest.param(proposal_body(signal_time="yesterday"), "signal_time", id="signal-time-garbage"),
    pytest.param(proposal_body(signal_time=1764072000), "signal_time", id="signal-time-as-number"),
    # unknown instrument
    pytest.param(proposal_body(symbol="DOGEUSDT"), "symbol", id="unknown-symbol"),
    # quantity not tradable on the instrument
    pytest.param(proposal_body(quantity="0.00005"), "quantity", id="quantity-below-instrument-minimum"),
    pytest.param(proposal_body(quantity="0.00015"), "quantity", id="quantity-off-the-step"),
]


@pytest.mark.parametrize("body, field", INVALID_BODIES)
def test_an_invalid_body_is_refused_with_400_naming_the_field_and_nothing_is_stored(api, body, field):
    with nothing_stored():
        response = post_proposal(api, body)
    assert_error(response, 400, "invalid", fields=[field])


def test_every_invalid_field_is_named_at_once(api):
    body = proposal_body(quantity="x", confidence=7, bogus=1)
    del body["side"]
    with nothing_stored():
        response = post_proposal(api, body)
    error = assert_error(response, 400, "invalid", fields=["quantity", "confidence", "bogus", "side"])
    assert error["fields"]["bogus"] == ["unknown field"]


def test_a_signal_time_within_the_clock_skew_is_accepted(api):
    response = post_proposal(api, proposal_body(signal_time=in_seconds(3)))
    assert response.status_code == 202


@pytest.mark.parametrize(
    "raw",
    [b'{"strategy": "demo",', b"not json", b'{"quantity": NaN}', b'{"a": 1, "a": 2}', b"\xff\xfe"],
    ids=["truncated", "not-json", "nan", "duplicate-key", "not-utf8"],
)
def test_malformed_json_is_refused_with_400_invalid(api, raw):
    with nothing_stored():
        response = api.post(URL, data=raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-malformed")
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize(
    "field, raw",
    [
        ("expected_slippage_bps", "1e999999999"),
        ("expected_slippage_bps", "1.5e-999999"),
        ("confidence", "1e-999999"),
        ("quantity", '"0.' + "0" * 40 + '1"'),
        ("limit_price", '"' + "9" * 37 + '"'),
    ],
    ids=["huge-exponent", "tiny-exponent", "tiny-confidence", "decimal-string-too-many-places", "decimal-string-too-many-digits"],
)
def test_numbers_too_long_to_write_out_are_refused(api, field, raw):
    # Valid JSON, but written out in full it would be up to a billion digits in every
    # check detail and audit payload.
    body = proposal_body()
    body[field] = "PLACEHOLDER"
    text = json.dumps(body).replace('"PLACEHOLDER"', raw)
    with nothing_stored():
        response = api.post(URL, data=text, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-long")
    assert_error(response, 400, "invalid", fields=[field])


@pytest.mark.parametrize("body", [[proposal_body()], "a string", 42], ids=["array", "string", "number"])
def test_a_json_body_that_is_not_an_object_is_refused(api, body):
    with nothing_stored():
        response = api.post(URL, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-shape")
    assert_error(response, 400, "invalid")


def test_an_invalid_list_filter_is_refused(api):
    assert_error(api.get(URL, {"status": "maybe"}), 400, "invalid", fields=["status"])


# --- 400 idempotency_key_required ---------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [None, "", "k" * 65, "has space", "slash/key", "ключ", "semi;colon"],
    ids=["missing", "empty", "too-long", "space", "slash", "non-ascii", "semicolon"],
)
def test_a_post_without_a_valid_idempotency_key_is_refused(api, key):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    with nothing_stored():
        response = api.post(URL, data=proposal_body(), format="json", **headers)
    assert_error(response, 400, "idempotency_key_required")


@pytest.mark.parametrize("key", ["k" * 64, "a", "A-z_0.9:x"], ids=["64-chars", "one-char", "every-class"])
def test_every_valid_idempotency_key_form_is_accepted(api, key):
    assert post_proposal(api, key=key).status_code == 202


# --- 401 not_authenticated -----------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Token cx_not-a-real-token", "Token ", "Bearer cx_whatever", "Token a b"],
    ids=["none", "bad-token", "empty-token", "wrong-scheme", "malformed"],
)
@pytest.mark.parametrize("method, path", [("post", URL), ("get", URL), ("get", f"{URL}7c879eff-1d46-41fe-a5ec-d82ebb157a0d/")])
def test_a_request_without_a_valid_token_is_refused_with_401(seeded, authorization, method, path):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    with nothing_stored():
        if method == "post":
            response = post_proposal(client)
        else:
            response = client.get(path)
    assert_error(response, 401, "not_authenticated")


def test_a_deactivated_agents_token_no_longer_authenticates(api):
    api.agent.is_active = False
    api.agent.save()
    assert_error(post_proposal(api), 401, "not_authenticated")


# --- 403 forbidden -------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["other", "ghost"], ids=["exists", "does-not-exist"])
def test_a_proposal_for_a_strategy_the_agent_is_not_bound_to_is_forbidden(api, other_api, strategy):
    with nothing_stored():
        response = post_proposal(api, proposal_body(strategy=strategy))
    assert_error(response, 403, "forbidden")


def test_an_unbound_strategy_is_forbidden_even_when_the_rest_of_the_body_is_invalid(api, other_api):
    with nothing_stored():
        response = post_proposal(api, proposal_body(strategy="other", quantity="nonsense"))
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("strategy", ["other", "ghost"])
def test_listing_an_unbound_strategy_is_forbidden(api, other_api, strategy):
    assert_error(api.get(URL, {"strategy": strategy}), 403, "forbidden")


# --- 404 not_found -------------------------------------------------------------------


@pytest.mark.parametrize("proposal_id", ["36dde7be-9aed-49ce-9a51-35eee6675e3a", "not-a-uuid"])
def test_an_unknown_proposal_is_not_found(api, proposal_id):
    assert_error(api.get(f"{URL}{proposal_id}/"), 404, "not_found")


def test_another_strategys_proposal_is_not_found_and_not_listed(api, other_api):
    theirs = post_proposal(other_api, proposal_body(strategy="other"))
    assert theirs.status_code == 202
    their_id = theirs.json()["id"]

    assert_error(api.get(f"{URL}{their_id}/"), 404, "not_found")
    assert their_id not in [p["id"] for p in api.get(URL).json()]
    # The owner still sees it: the 404 is about who asks, not about the proposal.
    assert other_api.get(f"{URL}{their_id}/").status_code == 200


def test_an_unknown_api_path_answers_in_the_envelope(api):
    assert_error(api.get("/api/v1/no-such-thing/"), 404, "not_found")


# --- 409 idempotency_conflict ----------------------------------------------------------


def test_reusing_a_key_with_a_different_body_is_a_conflict_and_stores_nothing(api):
    first = post_proposal(api, proposal_body(quantity="0.0010"), key="order-1")
    assert first.status_code == 202
    with nothing_stored():
        response = post_proposal(api, proposal_body(quantity="0.0020"), key="order-1")
    assert_error(response, 409, "idempotency_conflict")
    # The original stays as it was.
    assert api.get(f"{URL}{first.json()['id']}/").json()["quantity"] == "0.0010"


# --- 413 too_large ---------------------------------------------------------------------


def test_a_body_over_64_kib_is_refused_with_413(api):
    body = proposal_body(padding="x" * (64 * 1024))
    with nothing_stored():
        response = post_proposal(api, body)
    assert_error(response, 413, "too_large")


def test_a_body_just_under_64_kib_is_not_refused_for_its_size(api):
    body = proposal_body(padding="")
    overhead = len(json.dumps(body).encode())
    body["padding"] = "x" * (64 * 1024 - overhead)
    assert len(json.dumps(body).encode()) == 64 * 1024
    # Refused for the unknown field, not for its size.
    assert_error(post_proposal(api, body), 400, "invalid", fields=["padding"])


# --- 415 unsupported_media_type ---------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("text/plain", json.dumps(proposal_body())),
        ("application/x-www-form-urlencoded", "strategy=demo&symbol=BTCUSDT"),
        ("multipart/form-data; boundary=xyz", "--xyz--"),
        ("", json.dumps(proposal_body())),
    ],
    ids=["text", "form", "multipart", "none"],
)
def test_a_body_that_is_not_json_is_refused_with_415(api, content_type, data):
    with nothing_stored():
        response = api.generic("POST", URL, data, content_type=content_type, HTTP_IDEMPOTENCY_KEY="k-media")
    assert_error(response, 415, "unsupported_media_type")


def test_json_with_a_charset_parameter_is_accepted(api):
    response = api.post(
        URL, data=json.dumps(proposal_body()), content_type="application/json; charset=utf-8", HTTP_IDEMPOTENCY_KEY="k-cs"
    )
    assert response.status_code == 202


# --- 429 throttled -----------------------------------------------------------------------


@pytest.fixture
def low_rate(settings, monkeypatch):
    """Three requests per minute. DRF reads the rates into the throttle class once,
    at import, so the class attribute is patched too; the history cache is cleared."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"agent": "3/min"}}
    monkeypatch.setattr(AgentRateThrottle, "THROTTLE_RATES", {"agent": "3/min"})
    cache.clear()
    yield
    cache.clear()


def test_requests_over_the_agents_rate_are_throttled_with_retry_after(api, low_rate):
    for _ in range(3):
        assert api.get(URL).status_code == 200
    with nothing_stored():
        response = post_proposal(api)
    assert_error(response, 429, "throttled")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60


def test_the_rate_is_per_agent(api, other_api, low_rate):
    for _ in range(3):
        api.get(URL)
    assert api.get(URL).status_code == 429
    assert other_api.get(URL).status_code == 200


def test_health_and_schema_are_not_throttled(api, low_rate):
    client = APIClient()
    for _ in range(5):
        assert client.get("/api/v1/health/").status_code in (200, 503)
    assert client.get("/api/v1/schema/").status_code == 200


def test_the_default_rate_allows_at_least_600_requests_a_minute():
    from rest_framework.settings import api_settings

    count, period = AgentRateThrottle().parse_rate(api_settings.DEFAULT_THROTTLE_RATES["agent"])
    assert count * 60 / period >= 600
