"""An infrastructure blip is an answer, never a 500: while Redis is away proposals are
still accepted and stored; while PostgreSQL is away every request answers 503 with the
envelope and Retry-After."""

import logging

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from governance.models import Proposal
from tests.builders import assert_error, beat_all, post_proposal, proposal_body

URL = "/api/v1/proposals/"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_away(settings):
    """The throttle's cache is a Redis nobody answers on."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }


def test_while_redis_is_away_proposals_are_accepted_stored_and_the_throttle_says_it_let_them_through(
    api, redis_away, caplog
):
    with caplog.at_level(logging.WARNING, logger="governance.auth"):
        response = post_proposal(api)
        assert api.get(URL).status_code == 200

    assert response.status_code == 202, response.content
    assert Proposal.objects.filter(id=response.json()["id"]).exists()
    assert "request throttle unavailable" in caplog.text


def test_health_is_degraded_not_down_while_only_the_broker_is_away(seeded, settings):
    beat_all()
    settings.EMBEDDED_TASKS = False
    settings.CELERY_BROKER_URL = UNREACHABLE_REDIS

    response = APIClient().get("/api/v1/health/")

    assert (response.status_code, response.json()["status"], response.json()["broker"]) == (200, "degraded", "down")


@pytest.fixture
def database_away(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    return lambda target: monkeypatch.setattr(target, refuse)


def test_while_the_database_is_away_the_api_answers_503_with_retry_after(api, database_away):
    database_away("governance.auth.Agent.objects.filter")
    for response in (api.get(URL), post_proposal(api), api.get("/api/v1/portfolio/")):
        assert_error(response, 503, "unavailable")
        assert response["Retry-After"] == "5"


def test_while_the_database_is_away_a_page_outside_the_api_answers_503_too(admin_client, database_away):
    database_away("governance.selectors.dashboard.health_report")
    admin_client.raise_request_exception = False

    response = admin_client.get("/dashboard/partials/health/")

    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "unavailable"


def test_with_the_evaluation_queue_full_a_new_proposal_is_refused_429_and_nothing_is_stored(api, settings, monkeypatch):
    """Past what evaluation keeps up with, the queue stays bounded: the agent hears `overloaded`
    with Retry-After at once, instead of its proposal being decided minutes later."""
    from chronosx import pipeline
    from governance.services.evaluation import proposal_evaluate
    from ledger.models import AuditEvent

    settings.CHRONOSX_MAX_PENDING_PROPOSALS = 2
    monkeypatch.setattr(pipeline, "enqueue", lambda *args, **kwargs: None)  # nothing decides them yet
    body = proposal_body()
    first = post_proposal(api, body, key="first")
    assert post_proposal(api).status_code == 202
    stored, events = Proposal.objects.count(), AuditEvent.objects.count()

    refused = post_proposal(api)
    assert_error(refused, 429, "overloaded")
    assert refused["Retry-After"] == "1"
    assert (Proposal.objects.count(), AuditEvent.objects.count()) == (stored, events)
    # A retry of a proposal already stored is still answered, as ever.
    again = post_proposal(api, body, key="first")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]

    proposal_evaluate(proposal_id=first.json()["id"])  # one decided: room for one more
    assert post_proposal(api).status_code == 202
    assert_error(post_proposal(api), 429, "overloaded")  # full again
    # A close is taken whatever the queue: a full queue must not trap a position.
    assert post_proposal(api, proposal_body(side="sell", intent="close")).status_code == 202


def test_approved_proposals_awaiting_the_router_count_against_the_bound(api, settings, monkeypatch):
    """The bound covers the whole way to the venue: a router that falls behind fills it too."""
    from chronosx import pipeline

    settings.CHRONOSX_MAX_PENDING_PROPOSALS = 1
    monkeypatch.setattr(pipeline, "enqueue", lambda *args, **kwargs: None)
    waiting = post_proposal(api).json()["id"]
    Proposal.objects.filter(id=waiting).update(status=Proposal.Status.APPROVED)  # voted through, not yet routed
    assert_error(post_proposal(api), 429, "overloaded")

    Proposal.objects.filter(id=waiting).update(status=Proposal.Status.ROUTED)  # at the venue now
    assert post_proposal(api).status_code == 202
