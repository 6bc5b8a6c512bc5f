from contextlib import contextmanager

import pytest
from rest_framework.test import APIClient

from tests.conftest import make_agent

# Statuses a proposal the rules let through may be in, depending on how far the
# quorum and routing stages have got by the time the response is written.
NOT_BLOCKED = {"pending", "approved", "routed", "partially_filled", "filled"}


def counts():
    from governance.models import Decision, Proposal
    from ledger.models import AuditEvent

    return {
        "proposals": Proposal.objects.count(),
        "decisions": Decision.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


@contextmanager
def nothing_stored():
    """Asserts that the block stores no proposal, decision or audit event."""
    before = counts()
    yield
    assert counts() == before


def assert_error(response, status, code, fields=()):
    """The CONTRACT error envelope: {"error": {"code", "message", "fields"?}}, with `fields` naming each field."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if fields:
        assert set(fields) <= set(error["fields"]), error
    if "fields" in error:
        assert error["fields"], "fields, when present, names at least one field"
        for messages in error["fields"].values():
            assert messages and all(isinstance(m, str) and m for m in messages)
    return error


def client_for(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def other_api(seeded):
    """A second agent, bound only to strategy `other`."""
    agent, token = make_agent(("other",))
    client = client_for(token)
    client.agent = agent
    return client
