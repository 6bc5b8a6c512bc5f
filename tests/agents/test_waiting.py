"""`Prefer: wait=N`: the answer waits for a final status (or `approved` with return=approved),
without holding a database connection, and falls back to the usual answer when time runs out."""

import asyncio
import threading
import time
import uuid

import pytest
from django.db import connection
from django.test import AsyncClient
from django.utils import timezone

from governance.models import Proposal
from tests.builders import approved_proposal, client_for, make_agent, post_proposal, seed
from tests.ci_services import service_missing


@pytest.fixture
def agent(transactional_db):
    seed()
    agent, token = make_agent()
    return agent, token


def later(seconds, proposal_id, status):
    """Move the proposal to `status` after `seconds`, from another thread (another connection)."""

    def move():
        time.sleep(seconds)
        Proposal.objects.filter(id=proposal_id).update(status=status, status_changed_at=timezone.now())
        connection.close()

    thread = threading.Thread(target=move)
    thread.start()
    return thread


def test_a_post_that_is_final_at_once_answers_at_once_saying_the_wait_was_applied(api, trading_enabled):
    started = time.monotonic()
    response = post_proposal(api, HTTP_PREFER="wait=5")

    assert response.status_code == 202
    assert response.json()["status"] == "filled"
    assert response["Preference-Applied"] == "wait=5"
    assert time.monotonic() - started < 3


def test_without_prefer_nothing_waits_and_nothing_is_said(api, seeded):
    response = post_proposal(api)
    assert response.status_code == 202 and "Preference-Applied" not in response


def test_a_get_waits_until_the_proposal_is_final(agent):
    agent, token = agent
    proposal = approved_proposal(agent=agent)
    mover = later(0.8, proposal.id, Proposal.Status.FILLED)
    started = time.monotonic()
    response = client_for(token).get(f"/api/v1/proposals/{proposal.id}/", HTTP_PREFER="wait=10")
    waited = time.monotonic() - started
    mover.join()

    assert response.status_code == 200 and response.json()["status"] == "filled"
    assert response["Preference-Applied"] == "wait=10"
    assert 0.7 < waited < 5


def sessions_that_read(proposal) -> int:
    """Other sessions of this database whose last statement named the proposal: the pollers'."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND query LIKE %s",
            [f"%{proposal.id.hex}%"],
        )
        return cursor.fetchone()[0]


def test_a_wait_gives_its_reader_connection_back_when_it_ends(agent):
    # The poller reads on a thread of its own; once nobody waits it closes that thread's
    # connection. Under WSGI each request has its own event loop, so a poller that kept its
    # connection left one PostgreSQL session behind per waiting request.
    if connection.vendor != "postgresql":
        pytest.skip("sessions are counted in PostgreSQL")
    agent, token = agent
    proposal = approved_proposal(agent=agent)
    for _ in range(3):
        response = client_for(token).get(f"/api/v1/proposals/{proposal.id}/", HTTP_PREFER="wait=1")
        assert response["Preference-Applied"] == "wait=1"
    # A closed session leaves pg_stat_activity once its server process has exited: a moment later.
    deadline = time.monotonic() + 5
    while sessions_that_read(proposal) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sessions_that_read(proposal) == 0


def test_return_approved_answers_once_approved(agent):
    agent, token = agent
    proposal = approved_proposal(agent=agent)
    Proposal.objects.filter(id=proposal.id).update(status=Proposal.Status.PENDING)
    mover = later(0.5, proposal.id, Proposal.Status.APPROVED)
    response = client_for(token).get(f"/api/v1/proposals/{proposal.id}/", HTTP_PREFER="wait=10, return=approved")
    mover.join()

    assert response.json()["status"] == "approved"


def test_when_the_time_runs_out_the_usual_answer_comes(agent):
    agent, token = agent
    proposal = approved_proposal(agent=agent)
    started = time.monotonic()
    response = client_for(token).get(f"/api/v1/proposals/{proposal.id}/", HTTP_PREFER="wait=1")

    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert response["Preference-Applied"] == "wait=1"
    assert 0.9 < time.monotonic() - started < 4


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=", "respond-async", "wait=-1"])
def test_an_unreadable_preference_is_ignored(agent, prefer):
    agent, token = agent
    proposal = approved_proposal(agent=agent)
    response = client_for(token).get(f"/api/v1/proposals/{proposal.id}/", HTTP_PREFER=prefer)
    assert response.status_code == 200 and "Preference-Applied" not in response


def test_a_wait_over_thirty_seconds_is_cut_to_thirty(agent):
    agent, token = agent
    proposal = approved_proposal(agent=agent)
    Proposal.objects.filter(id=proposal.id).update(status=Proposal.Status.FILLED)
    response = client_for(token).get(f"/api/v1/proposals/{proposal.id}/", HTTP_PREFER="wait=999")
    assert response["Preference-Applied"] == "wait=30"


def test_errors_are_answered_at_once(agent):
    agent, token = agent
    started = time.monotonic()
    response = client_for(token).get(f"/api/v1/proposals/{uuid.uuid4()}/", HTTP_PREFER="wait=10")
    assert response.status_code == 404 and time.monotonic() - started < 2


def connections_to_this_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_two_hundred_waiting_requests_hold_no_database_connections(agent):
    if connection.vendor != "postgresql":
        service_missing("PostgreSQL: counts the server's connections")
    agent, token = agent
    proposals = [approved_proposal(agent=agent).id for _ in range(20)]
    before = connections_to_this_database()
    seen = []

    async def main():
        client, headers = AsyncClient(), {"Authorization": f"Token {token}", "Prefer": "wait=4"}
        waits = [
            asyncio.ensure_future(client.get(f"/api/v1/proposals/{proposals[i % 20]}/", headers=headers))
            for i in range(200)
        ]
        await asyncio.sleep(2.5)  # every request is now waiting
        seen.append(await asyncio.to_thread(count_and_close))
        return await asyncio.gather(*waits)

    def count_and_close():
        try:
            return connections_to_this_database()
        finally:
            connection.close()

    answers = asyncio.run(main())

    assert [a.status_code for a in answers] == [200] * 200
    assert all(a["Preference-Applied"] == "wait=4" for a in answers)
    # The pollers' own connection and this counting one: nowhere near one per request.
    assert seen[0] - before <= 5, (before, seen)


def test_a_failed_read_does_not_end_the_wait_the_next_read_answers(agent, monkeypatch):
    from django.db import OperationalError

    from governance.apis import live

    agent, token = agent
    proposal = approved_proposal(agent=agent)
    reads = []

    def first_read_fails(ids):
        reads.append(ids)
        if len(reads) == 1:
            raise OperationalError("the database went away for a moment")
        return real_statuses(ids)

    real_statuses = live._statuses
    monkeypatch.setattr(live, "_statuses", first_read_fails)
    mover = later(0.3, proposal.id, Proposal.Status.FILLED)
    started = time.monotonic()
    response = client_for(token).get(f"/api/v1/proposals/{proposal.id}/", HTTP_PREFER="wait=10")
    waited = time.monotonic() - started
    mover.join()

    assert response.status_code == 200 and response.json()["status"] == "filled"
    assert len(reads) >= 2 and waited < 5  # answered by a later read, not by the time-out
