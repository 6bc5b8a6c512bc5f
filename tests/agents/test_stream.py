"""GET /api/v1/stream/: an agent's events as server-sent events, resumable with Last-Event-ID
with nothing lost or repeated; a staff token's drop copy carries every agent's."""

import json

import pytest

from governance.services.agents import agent_create
from ledger.models import AuditEvent
from ledger.services import audit_chain_extend, audit_record
from tests.builders import approved_proposal, client_for, make_agent, seed


def events(response, count):
    assert response.status_code == 200, response.content
    """The first `count` events of a stream answer, parsed; the connection is then dropped."""
    found, fields = [], {}
    content = response.streaming_content
    lines = (line for chunk in content for line in chunk.decode().split("\n"))
    for line in lines:
        if line == "":
            if "id" in fields:
                found.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
                if len(found) == count:
                    break
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    # The client goes away: the stream's generator is closed when the answer is dropped, by
    # Django's test client, which leaves the test's own connection (its transaction) open.
    lines.close()
    return found


@pytest.fixture
def two_agents(db):
    seed()
    mine, my_token = make_agent(("demo",))
    other, other_token = make_agent(("other",))
    return (mine, my_token), (other, other_token)


def proposal_of(agent, builder_agent):
    """A proposal of `agent`'s only strategy (the builder makes it for a `demo` agent)."""
    proposal = approved_proposal(agent=builder_agent)
    proposal.agent, proposal.strategy = agent, agent.strategies.get()
    proposal.save(update_fields=["agent", "strategy"])
    return proposal


def record(proposal, count, start=0):
    for n in range(start, start + count):
        audit_record(kind="order.status", actor="router", proposal_id=proposal.id, payload={"n": n})


def chain():
    while audit_chain_extend():
        pass


def test_a_stream_resumed_after_a_drop_loses_and_repeats_nothing_across_a_thousand_events(two_agents):
    (mine, token), (other, _) = two_agents
    my_proposal, their_proposal = approved_proposal(agent=mine), proposal_of(other, mine)
    for block in range(10):  # interleaved with another agent's events
        record(my_proposal, 100, start=block * 100)
        record(their_proposal, 30, start=block * 30)
    chain()
    api = client_for(token)

    first = events(api.get("/api/v1/stream/", HTTP_LAST_EVENT_ID="0"), 400)
    rest = events(api.get("/api/v1/stream/", HTTP_LAST_EVENT_ID=str(first[-1]["id"])), 600)

    seen = first + rest
    ids = [event["id"] for event in seen]
    assert ids == sorted(set(ids)), "ids strictly increasing, none repeated"
    assert [event["data"]["n"] for event in seen] == list(range(1000)), "every event of mine, in order, once"
    assert {event["data"]["proposal_id"] for event in seen} == {str(my_proposal.id)}
    assert {event["event"] for event in seen} == {"order"}
    mine_ids = set(
        AuditEvent.objects.filter(proposal_id=my_proposal.id).values_list("seq", flat=True)
    )
    assert set(ids) == mine_ids


def test_the_staff_drop_copy_carries_every_agents_events_and_a_plain_agent_never_sees_anothers(two_agents):
    (mine, token), (other, other_token) = two_agents
    _, staff_token = agent_create(name="risk-desk", strategy_slugs=["demo"], staff=True)
    my_proposal, their_proposal = approved_proposal(agent=mine), proposal_of(other, mine)
    audit_record(kind="fill.recorded", actor="router", proposal_id=their_proposal.id, payload={"trade_id": "t-1"})
    audit_record(kind="fill.recorded", actor="router", proposal_id=my_proposal.id, payload={"trade_id": "t-2"})
    chain()

    drop_copy = events(client_for(staff_token).get("/api/v1/stream/", HTTP_LAST_EVENT_ID="0"), 2)
    assert [(e["event"], e["data"]["trade_id"]) for e in drop_copy] == [("fill", "t-1"), ("fill", "t-2")]
    assert [e["data"]["trade_id"] for e in events(client_for(other_token).get("/api/v1/stream/", HTTP_LAST_EVENT_ID="0"), 1)] == ["t-1"]
    assert [e["data"]["trade_id"] for e in events(client_for(token).get("/api/v1/stream/", HTTP_LAST_EVENT_ID="0"), 1)] == ["t-2"]


def test_the_stream_needs_a_token(client, db):
    response = client.get("/api/v1/stream/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_an_event_stream_client_that_accepts_only_text_event_stream_gets_the_stream(two_agents):
    (mine, token), _ = two_agents
    audit_record(kind="fill.recorded", actor="router", proposal_id=approved_proposal(agent=mine).id, payload={"trade_id": "t-1"})
    chain()

    response = client_for(token).get("/api/v1/stream/", HTTP_LAST_EVENT_ID="0", HTTP_ACCEPT="text/event-stream")

    assert response["Content-Type"] == "text/event-stream"
    assert [e["data"]["trade_id"] for e in events(response, 1)] == ["t-1"]
