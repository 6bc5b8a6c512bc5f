"""Schemathesis drives the whole agent API in-process, from the schema the API serves
(GET /api/v1/schema/): valid and invalid requests for every operation (its coverage,
examples and fuzzing phases), each answer checked against that schema by all of its
default checks (never a 5xx; status, content type, headers and body as documented;
invalid data refused; authentication enforced), and nothing stored unless a proposal was
accepted (202).

Bounded and seeded, so a run takes seconds and CI replays the same requests."""

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from governance.apis.proposals import IDEMPOTENCY_KEY
from governance.auth import AgentRateThrottle
from governance.models import Proposal
from governance.schema import CONTROL_CHARACTER
from tests.builders import beat_all, client_for, counts, make_agent, post_proposal, proposal_body

SEED = 20260301
MAX_EXAMPLES = 30  # per operation, fuzzing phase; the coverage phase adds its own cases

# The 400s a request valid by the schema may still get: rules that depend on stored data
# or on the clock, and the digit bound of JSON numbers, which JSON Schema cannot state.
# The schema's request body says each of them in its description.
REFUSALS_THE_SCHEMA_CANNOT_STATE = {
    "symbol": re.compile(r"unknown instrument "),
    "quantity": re.compile(r"(is below the minimum|must be a multiple of the step) "),
    "signal_time": re.compile(r"(is in the future|is older than 7 days)"),
    "expected_slippage_bps": re.compile(r"must be a finite number of at most \d+ digits$"),
    "confidence": re.compile(r"must be a finite number of at most \d+ digits$"),
}
# What else a valid request may meet: not the agent's (403, 404), a key used before (409), too fast (429).
ACCEPTABLE_FOR_VALID_DATA = {401, 403, 404, 409, 429}


def valid_data_refused_only_for_reasons_the_schema_gives(ctx, response, case):
    """Schemathesis' positive_data_acceptance (switched off below), less the refusals above."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if 200 <= status < 300 or status in ACCEPTABLE_FOR_VALID_DATA or status >= 500:  # 5xx: not_a_server_error's
        return None
    if status == 400:
        fields = response.json()["error"].get("fields") or {"(no field)": [response.text]}
        unexplained = {
            name: messages
            for name, messages in fields.items()
            if name not in REFUSALS_THE_SCHEMA_CANNOT_STATE
            or not all(REFUSALS_THE_SCHEMA_CANNOT_STATE[name].match(m) for m in messages)
        }
        if not unexplained:
            return None
        raise AssertionError(f"a request valid by the schema was refused: {unexplained}")
    raise AssertionError(f"a request valid by the schema was refused with {status}: {response.text}")


# --- what the schema cannot know: the installation's strategy, instrument, ids and clock ---


def _valid_string(value, max_length):
    return isinstance(value, str) and 1 <= len(value) <= max_length and not re.search(CONTROL_CHARACTER, value)


def _aware_time(value):
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def in_the_demo_installation(proposal_ids):
    """A before_call hook. Wherever a generated value is valid by the schema, what only the
    installation knows is put in: strategy `demo`, instrument BTCUSDT, signal time now, and
    for every other valid id one of the agent's own proposals. The requests then reach the
    body's rules, the pipeline and real proposals, not only the 403 and 404 of unknown
    names. Schemathesis re-checks an edited request, so one made valid is no longer
    counted as invalid data."""

    def before_call(context, case, kwargs):
        if case.path.endswith("{proposal_id}/"):
            proposal_id = _uuid(case.path_parameters.get("proposal_id"))
            if proposal_id is not None and proposal_id.int % 2 == 0:
                case.path_parameters["proposal_id"] = proposal_ids[proposal_id.int % len(proposal_ids)]
        body = case.body
        if case.method != "POST" or not isinstance(body, dict):
            return
        if _valid_string(body.get("strategy"), 64):
            body["strategy"] = "demo"
        if _valid_string(body.get("symbol"), 32):
            body["symbol"] = "BTCUSDT"
        if _aware_time(body.get("signal_time")):
            body["signal_time"] = datetime.now(timezone.utc).isoformat()
        # Hypothesis draws the same few keys again and again: a valid key is made one per
        # body, so a new body is a new proposal (202) and the same body again a replay (200),
        # where a drawn key would mostly meet 409 (tests/api/test_errors.py has that).
        key = case.headers.get("Idempotency-Key") if case.headers else None
        if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
            digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
            case.headers["Idempotency-Key"] = f"{key[:40]}.{digest[:16]}"

    return before_call


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def unthrottled(monkeypatch):
    """The fuzzer sends about a thousand requests a minute; the rate limit has its own tests."""
    monkeypatch.setattr(AgentRateThrottle, "THROTTLE_RATES", {"agent": "1000000/min"})


def on_the_test_connection(handler):
    """The application as a WSGI server runs it, but on the test's database connection.
    Around a request Django closes a connection that is inside a transaction
    (close_old_connections), which would end the test's; its own test client unhooks
    that for each request, and so does this (a Django test client request hooks it again)."""

    def app(environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = handler(environ, start_response)
            try:
                return list(response)
            finally:
                response.close()  # sends request_finished
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    return app


@pytest.fixture
def wsgi_app(trading_enabled, unthrottled):
    return on_the_test_connection(get_wsgi_application())


@pytest.fixture
def agent_proposals(trading_enabled):
    """The agent, with proposals in the states a fuzzer cannot reach by chance: through
    the quorum and the sandbox venue (orders, fills), cut down (modify), and blocked."""
    _, token = make_agent()
    client = client_for(token)
    ids = []
    for body in (proposal_body(), proposal_body(quantity="1000"), proposal_body(confidence=0.1)):
        response = post_proposal(client, body)
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    return token, ids


@pytest.fixture
def api_schema(wsgi_app, agent_proposals):
    token, proposal_ids = agent_proposals
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # As the schema's tokenAuth scheme, so the ignored_auth check can send it wrong or not at all.
            "auth": {"openapi": {"tokenAuth": {"api_key": f"Token {token}"}}},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    )
    # before_call is a hook of Schemathesis' global scope only: registered for this test alone.
    hook = in_the_demo_installation(proposal_ids)
    GLOBAL_HOOK_DISPATCHER.register_hook_with_name(hook, "before_call")
    yield schemathesis.openapi.from_wsgi("/api/v1/schema/", wsgi_app, config=config)
    GLOBAL_HOOK_DISPATCHER.unregister(hook)


# The event stream answers for as long as the client listens: it has no one answer to check
# (tests/agents/test_stream.py has its own tests, unauthenticated answers included).
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/v1/stream/")


@schema.parametrize()
def test_every_answer_is_documented_never_a_5xx_and_nothing_is_stored_unless_accepted(case):
    if case.path.endswith("/health/"):
        beat_all()  # every worker alive, as in a running installation: 200, not 503
    before = counts()
    response = case.call()
    after = counts()

    case.validate_response(response, additional_checks=[valid_data_refused_only_for_reasons_the_schema_gives])
    if case.method == "POST" and response.status_code == 202:
        assert after["proposals"] == before["proposals"] + 1
    else:
        assert after == before, f"{case.method} {case.path} answered {response.status_code} and stored something"


# --- what the schema says, read as a client reads it ------------------------------------


@pytest.fixture
def openapi(db):
    return APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


ERRORS_BY_OPERATION = {
    ("post", "/api/v1/proposals/"): {400, 401, 403, 406, 409, 413, 415, 429, 503},
    ("get", "/api/v1/proposals/"): {400, 401, 403, 406, 429, 503},
    ("get", "/api/v1/proposals/{proposal_id}/"): {401, 404, 406, 429, 503},
    ("get", "/api/v1/portfolio/"): {401, 406, 429, 503},
    ("get", "/api/v1/portfolio/realized/"): {400, 401, 406, 429, 503},
    ("get", "/api/v1/health/"): {406},
    ("get", "/api/v1/proposals/{proposal_id}/receipt/"): {401, 404, 406, 429, 503},
    ("get", "/api/v1/node-keys/"): {406},
    ("get", "/api/v1/stream/"): {401, 406, 429, 503},
}


def test_every_operation_documents_its_errors_in_the_envelope(openapi):
    operations = {(m, p): op for p, ops in openapi["paths"].items() for m, op in ops.items()}
    assert set(operations) == set(ERRORS_BY_OPERATION)
    for key, statuses in ERRORS_BY_OPERATION.items():
        responses = operations[key]["responses"]
        errors = {int(s) for s, r in responses.items() if "Error" in json.dumps(r)}
        assert errors == statuses, key
        for status in {429, 503} & statuses:
            assert responses[str(status)]["headers"]["Retry-After"]["required"], key
    error = openapi["components"]["schemas"]["ErrorDetail"]
    codes = openapi["components"]["schemas"]["ErrorCodeEnum"]["enum"]
    assert {
        "invalid", "idempotency_key_required", "not_authenticated", "forbidden", "not_found",
        "idempotency_conflict", "too_large", "unsupported_media_type", "throttled", "unavailable", "method_not_allowed",
    } <= set(codes)
    assert error["required"] == ["code", "message"] and error["additionalProperties"] is False


def test_the_request_body_states_the_contracts_input_rules(openapi):
    schemas = openapi["components"]["schemas"]
    post = openapi["paths"]["/api/v1/proposals/"]["post"]
    key = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")
    assert key["required"] and key["schema"]["pattern"] == r"^[A-Za-z0-9_.:\-]{1,64}$"
    assert post["requestBody"]["required"]
    limit, market = schemas["LimitProposalIn"], schemas["MarketProposalIn"]
    assert "limit_price" in limit["required"] and "limit_price" not in market["properties"]
    for body in (limit, market):
        assert body["additionalProperties"] is False
        fields = body["properties"]
        assert fields["signal_time"]["format"] == "date-time"
        for name in ("quantity", "reference_price"):
            assert fields[name]["type"] == "string" and fields[name]["pattern"] == r"^-?[0-9]+(\.[0-9]+)?$"
        assert (fields["confidence"]["type"], fields["confidence"]["minimum"], fields["confidence"]["maximum"]) == ("number", 0, 1)
        assert (fields["expected_slippage_bps"]["type"], fields["expected_slippage_bps"]["minimum"]) == ("number", 0)
    assert schemas["SideEnum"]["enum"] == ["buy", "sell"]
    assert schemas["IntentEnum"]["enum"] == ["open", "close"]
    assert schemas["ProposalStatusEnum"]["enum"] == [s.value for s in Proposal.Status]
    assert schemas["OutcomeEnum"]["enum"] == ["approve", "modify", "block"]
    assert schemas["Proposal"]["properties"]["received_at"]["format"] == "date-time"


def test_a_down_health_answer_matches_the_schema_too(wsgi_app):
    """503 is how health says `down` (no worker has beaten here), documented with the same body."""
    loaded = schemathesis.openapi.from_wsgi("/api/v1/schema/", wsgi_app)
    case = loaded["/api/v1/health/"]["GET"].Case()
    response = case.call()
    assert response.status_code == 503 and response.json()["status"] == "down"
    case.validate_response(response, excluded_checks=[not_a_server_error])
