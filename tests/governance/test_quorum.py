"""The MPC quorum with the three nodes in-process (eager tasks), each signing with its own key file."""

import base64
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from nacl.signing import SigningKey

from chronosx import pipeline
from exchange.models import Order
from governance import digests, keys, nodes
from governance.models import (
    Decision,
    Instrument,
    Proposal,
    Strategy,
    VenueHealth,
    Vote,
)
from governance.selectors.controls import ruleset_current
from governance.selectors.quorum import quorum_certificate_verify
from governance.services import quorum
from governance.services.controls import breaker_trip, pause_set, trading_reduce_only
from governance.services.evaluation import proposal_evaluate
from governance.services.rulesets import ruleset_new_draft, ruleset_publish
from ledger.models import AuditEvent, Position
from tests.builders import post_proposal, proposal_body

# Approved, and possibly already routed and filled by the sandbox venue.
APPROVED = {"approved", "routed", "partially_filled", "filled"}
DOC = Path(__file__).resolve().parents[2] / "docs" / "verifying-votes.md"


class NodeQueues:
    """The three node queues: a stopped node never consumes; its messages wait in `held`."""

    def __init__(self):
        self.stopped, self.held, self.routed = set(), [], []

    def stop(self, *node_names):
        self.stopped.update(node_names)

    def deliver_held(self):
        held, self.held = self.held, []
        return [nodes.node_vote(proposal_id=proposal_id, node=node) for proposal_id, node in held]


@pytest.fixture
def queues(monkeypatch):
    q = NodeQueues()
    enqueue = pipeline.enqueue

    def fake_enqueue(stage, *args, queue=None):
        if stage == pipeline.VOTE and queue in q.stopped:
            q.held.append(tuple(args))
            return
        if stage == pipeline.ROUTE:
            q.routed.append(str(args[0]))
        enqueue(stage, *args, queue=queue)

    monkeypatch.setattr(pipeline, "enqueue", fake_enqueue)
    return q


@pytest.fixture
def post(api, trading_enabled):
    def post_one(**overrides):
        response = post_proposal(api, proposal_body(**overrides))
        assert response.status_code == 202, response.content
        return response.json()["id"]

    return post_one


def fetch(api, proposal_id):
    return api.get(f"/api/v1/proposals/{proposal_id}/").json()


def audit_kinds(proposal_id):
    return list(AuditEvent.objects.filter(proposal_id=str(proposal_id)).order_by("id").values_list("kind", flat=True))


def assert_signature_verifies(proposal_id, vote):
    node, public_key = keys.public_key_lookup(vote["key_id"])
    assert node == vote["node"]
    message = digests.vote_message(
        proposal_id=proposal_id, decision_digest=vote["decision_digest"], node=vote["node"], verdict=vote["verdict"], key_id=vote["key_id"]
    )
    assert keys.signature_valid(public_key=public_key, message=message, signature=vote["signature"])


def test_all_three_nodes_approve_a_sound_proposal_with_three_verifying_signatures(api, post, queues):
    proposal_id = post()
    body = fetch(api, proposal_id)

    assert body["status"] in APPROVED
    q = body["quorum"]
    assert (q["required"], q["approvals"], q["met"]) == (2, 3, True)
    assert sorted(v["node"] for v in q["votes"]) == ["execution", "portfolio", "risk"]
    for vote in q["votes"]:
        assert vote["verdict"] == "approve" and vote["verified"] is True
        assert vote["decision_digest"] == body["decision"]["digest"]
        assert vote["key_id"].startswith(vote["node"] + "-")
        assert_signature_verifies(proposal_id, vote)
    assert len({v["key_id"] for v in q["votes"]}) == 3  # three keys, not one
    assert queues.routed == [proposal_id]
    assert quorum_certificate_verify(proposal_id=proposal_id) == (
        True,
        "quorum certificate valid: 3 verifying approvals (execution, portfolio, risk); 2 required",
    )
    kinds = audit_kinds(proposal_id)
    assert kinds.count("vote.cast") == 3 and kinds.count("quorum.met") == 1 and "quorum.opened" in kinds


def test_with_one_node_stopped_the_other_two_approve(api, post, queues):
    queues.stop("execution")
    proposal_id = post()
    body = fetch(api, proposal_id)

    assert body["status"] in APPROVED
    assert body["quorum"]["approvals"] == 2 and body["quorum"]["met"] is True
    assert sorted(v["node"] for v in body["quorum"]["votes"]) == ["portfolio", "risk"]
    assert queues.routed == [proposal_id]
    assert quorum_certificate_verify(proposal_id=proposal_id)[0] is True


def test_a_vote_reads_the_decision_and_its_ruleset_with_the_proposal_not_apart(post, queues):
    # Each vote is on the path of every order: the node's review and the tally under the
    # proposal's lock each take the decision (and the review its ruleset) in the same read.
    queues.stop("risk")
    proposal_id = post()
    with CaptureQueriesContext(connection) as queries:
        (vote,) = queues.deliver_held()
    assert vote.verdict == "approve"
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if sql.startswith('SELECT "governance_decision"')]
    assert not [sql for sql in reads if sql.startswith('SELECT "governance_ruleset"')]
    assert len([sql for sql in reads if 'JOIN "governance_decision"' in sql]) == 2


def test_with_two_nodes_stopped_it_expires_after_the_vote_timeout_and_nothing_is_routed(api, post, queues):
    queues.stop("portfolio", "execution")
    proposal_id = post()
    decision = Decision.objects.get(proposal_id=proposal_id)
    assert fetch(api, proposal_id)["status"] == "pending"
    assert fetch(api, proposal_id)["quorum"]["approvals"] == 1

    # Before the deadline the sweeper asks the missing nodes again, and expires nothing.
    counts = quorum.quorum_sweep(now=decision.decided_at + timedelta(seconds=3))
    assert counts == {"quorum_expired": 0, "votes_rerequested": 2}
    assert Proposal.objects.get(id=proposal_id).status == "pending"

    timeout = Decimal(decision.inputs["rules"]["vote_timeout_seconds"])
    counts = quorum.quorum_sweep(now=decision.decided_at + timedelta(seconds=float(timeout) + 0.1))
    assert counts["quorum_expired"] == 1
    body = fetch(api, proposal_id)
    assert body["status"] == "expired" and body["quorum"]["met"] is False
    assert queues.routed == [] and not Order.objects.filter(proposal_id=proposal_id).exists()
    assert "quorum.expired" in audit_kinds(proposal_id)

    # Nodes coming back late cannot revive it.
    assert queues.deliver_held() == [None] * 4
    assert Proposal.objects.get(id=proposal_id).status == "expired"
    assert Vote.objects.filter(proposal_id=proposal_id).count() == 1
    assert quorum_certificate_verify(proposal_id=proposal_id)[0] is False


def test_a_decision_row_altered_after_the_fact_gets_reject_votes_and_never_reaches_the_router(api, post, queues):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    Decision.objects.filter(proposal_id=proposal_id).update(approved_quantity=Decimal("5.0000"))

    votes = queues.deliver_held()

    assert [v.verdict for v in votes] == ["reject"] * 3
    assert all("decision does not verify" in v.reason for v in votes)
    assert Proposal.objects.get(id=proposal_id).status == "blocked"
    assert queues.routed == [] and not Order.objects.filter(proposal_id=proposal_id).exists()
    ok, reason = quorum_certificate_verify(proposal_id=proposal_id)
    assert ok is False
    assert "quorum.failed" in audit_kinds(proposal_id)


def test_altering_an_approved_decision_voids_its_quorum_certificate(post, queues):
    proposal_id = post()
    assert quorum_certificate_verify(proposal_id=proposal_id)[0] is True

    decision = Decision.objects.get(proposal_id=proposal_id)
    decision.approved_quantity = Decimal("5.0000")
    # Even with a digest column made to match the edited row, the engine's recomputation disagrees.
    Decision.objects.filter(proposal_id=proposal_id).update(
        approved_quantity=decision.approved_quantity, digest=digests.decision_row_digest(decision)
    )
    ok, reason = quorum_certificate_verify(proposal_id=proposal_id)
    assert ok is False and "recomputed decision is approve 0.0010, stored decision is approve 5.0000" in reason


def test_a_proposal_row_altered_after_the_decision_gets_reject_votes(post, queues):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    Proposal.objects.filter(id=proposal_id).update(side="sell")

    votes = queues.deliver_held()

    assert {v.verdict for v in votes} == {"reject"}
    assert "stored proposal differs" in votes[0].reason
    assert Proposal.objects.get(id=proposal_id).status == "blocked"


def test_a_vote_with_a_forged_signature_is_refused_and_audited(post, queues):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    decision = Decision.objects.get(proposal_id=proposal_id)
    risk_key_id = keys.node_signer("risk").key_id
    forger = SigningKey.generate()
    message = digests.vote_message(
        proposal_id=proposal_id, decision_digest=decision.digest, node="risk", verdict="approve", key_id=risk_key_id
    )

    vote = quorum.vote_record(
        proposal_id=proposal_id,
        node="risk",
        verdict="approve",
        reason="trust me",
        key_id=risk_key_id,
        decision_digest=decision.digest,
        signature=base64.b64encode(forger.sign(message).signature).decode(),
    )

    assert vote is None and not Vote.objects.filter(proposal_id=proposal_id).exists()
    refusal = AuditEvent.objects.filter(proposal_id=proposal_id, kind="vote.refused").get()
    assert "bad signature: signature does not verify against key " + risk_key_id in refusal.payload


def test_a_signature_by_one_node_does_not_count_as_another(post, queues):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    decision = Decision.objects.get(proposal_id=proposal_id)
    risk = keys.node_signer("risk")
    message = digests.vote_message(
        proposal_id=proposal_id, decision_digest=decision.digest, node="portfolio", verdict="approve", key_id=risk.key_id
    )

    vote = quorum.vote_record(
        proposal_id=proposal_id, node="portfolio", verdict="approve", reason="", key_id=risk.key_id,
        decision_digest=decision.digest, signature=risk.sign(message),
    )

    assert vote is None
    assert "belongs to node risk, not portfolio" in AuditEvent.objects.get(proposal_id=proposal_id, kind="vote.refused").payload


def test_a_forged_vote_row_written_into_the_database_does_not_count(api, post, queues):
    queues.stop("portfolio", "execution")
    proposal_id = post()
    decision = Decision.objects.get(proposal_id=proposal_id)
    genuine = Vote.objects.get(proposal_id=proposal_id)
    Vote.objects.create(
        proposal_id=proposal_id, node="portfolio", verdict="approve", reason="inserted", cast_at=genuine.cast_at,
        key_id=keys.node_signer("portfolio").key_id, decision_digest=decision.digest, signature=genuine.signature,
    )
    # Even if the status is forced too, the router's certificate check finds one approval.
    Proposal.objects.filter(id=proposal_id).update(status="approved")

    q = fetch(api, proposal_id)["quorum"]
    assert q["approvals"] == 1 and q["met"] is False
    assert [v["verified"] for v in q["votes"] if v["node"] == "portfolio"] == [False]
    assert quorum_certificate_verify(proposal_id=proposal_id) == (
        False,
        "1 verifying approvals of the current decision; 2 required",
    )


def test_a_vote_reads_the_votes_once_under_the_lock_and_inserts_without_a_savepoint(post, queues, monkeypatch):
    # Votes are written only under the proposal's lock, so the read there finds every vote: it
    # refuses a second one and feeds the tally. Whether this node has voted comes with the
    # node's read of the proposal.
    queues.stop("risk", "portfolio")
    proposal_id = post()
    enqueue = pipeline.enqueue

    def not_routed(stage, *args, **kwargs):  # the router's reads and savepoints are not the votes'
        if stage != pipeline.ROUTE:
            enqueue(stage, *args, **kwargs)

    monkeypatch.setattr(pipeline, "enqueue", not_routed)
    (held_first, node_first), (held_second, node_second) = queues.held
    with CaptureQueriesContext(connection) as queries:
        first = nodes.node_vote(proposal_id=held_first, node=node_first)
        approved = Proposal.objects.get(id=proposal_id).status  # the tally counted the vote just cast
        second = nodes.node_vote(proposal_id=held_second, node=node_second)
    assert (first.verdict, second.verdict, approved) == ("approve", "approve", "approved")
    sqls = [q["sql"] for q in queries.captured_queries]
    assert len([sql for sql in sqls if sql.startswith('SELECT "governance_vote"')]) == 2  # one a vote
    assert not [sql for sql in sqls if "SAVEPOINT" in sql]


def test_a_second_vote_from_the_same_node_is_refused(post, queues):
    proposal_id = post()
    first = Vote.objects.get(proposal_id=proposal_id, node="risk")
    risk = keys.node_signer("risk")
    message = digests.vote_message(
        proposal_id=proposal_id, decision_digest=first.decision_digest, node="risk", verdict="reject", key_id=risk.key_id
    )

    second = quorum.vote_record(
        proposal_id=proposal_id, node="risk", verdict="reject", reason="changed my mind", key_id=risk.key_id,
        decision_digest=first.decision_digest, signature=risk.sign(message),
    )

    assert second is None
    assert Vote.objects.filter(proposal_id=proposal_id, node="risk").count() == 1
    assert "node risk has already voted" in AuditEvent.objects.get(proposal_id=proposal_id, kind="vote.refused").payload
    # Asking the node again is harmless: it answers with its recorded vote.
    assert nodes.node_vote(proposal_id=proposal_id, node="risk") == first


def test_a_modified_decision_is_approved_for_the_cut_down_quantity(api, post, queues):
    proposal_id = post(quantity="1000")
    body = fetch(api, proposal_id)
    assert body["decision"]["outcome"] == "modify"
    assert body["status"] in APPROVED and body["quorum"]["approvals"] == 3
    risk_vote = next(v for v in body["quorum"]["votes"] if v["node"] == "risk")
    assert "order notional 9997.0000 <= maximum 10000" in risk_vote["reason"]


def test_the_execution_node_rejects_after_a_breaker_trips_and_two_approvals_still_carry(api, post, queues):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    breaker_trip(name="venue_errors", actor="test", reason="venue errors")

    votes = {v.node: v for v in queues.deliver_held()}

    assert votes["execution"].verdict == "reject"
    assert votes["execution"].reason == "execution rules fail: circuit_breaker: tripped: venue_errors"
    assert votes["risk"].verdict == votes["portfolio"].verdict == "approve"
    assert Proposal.objects.get(id=proposal_id).status in APPROVED


@pytest.mark.parametrize("change, reason", [
    (lambda: trading_reduce_only(actor="test", reason="unwinding"),
     "execution rules fail: trading_enabled: trading is reduce-only: only closes pass"),
    (lambda: pause_set(target=Strategy.objects.get(slug="demo"), paused=True, actor="test", reason="review"),
     "execution rules fail: trading_enabled: strategy demo is paused: review"),
    (lambda: pause_set(target=Instrument.objects.get(symbol="BTCUSDT"), paused=True, actor="test", reason="listing"),
     "execution rules fail: instrument_enabled: BTCUSDT is paused: listing"),
], ids=["reduce_only", "strategy_paused", "instrument_paused"])
def test_the_execution_node_rejects_after_reduce_only_or_a_pause_comes_in_before_it_votes(api, post, queues, change, reason):
    queues.stop("risk", "portfolio", "execution")
    post()
    change()

    votes = {v.node: v for v in queues.deliver_held()}

    assert votes["execution"].verdict == "reject" and votes["execution"].reason == reason
    assert votes["risk"].verdict == votes["portfolio"].verdict == "approve"


def test_the_execution_node_rejects_while_the_router_reports_the_venue_unhealthy(post, queues):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    VenueHealth.objects.filter(venue="sandbox").update(healthy=False, detail="sandbox (not live) down")

    vote = nodes.node_vote(proposal_id=proposal_id, node="execution")

    assert (vote.verdict, vote.reason) == ("reject", "venue unhealthy: sandbox (not live) down")


def test_the_execution_node_rejects_when_the_router_has_not_probed_the_venue_lately(post, queues):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    VenueHealth.objects.update(checked_at=timezone.now() - timedelta(minutes=5))

    vote = nodes.node_vote(proposal_id=proposal_id, node="execution")

    assert vote.verdict == "reject"
    assert vote.reason == "venue unhealthy: venue health of sandbox is 300 s old (the router has not probed it since)"


def test_a_node_process_never_builds_a_venue(post, queues, settings, monkeypatch):
    # A node given a live venue without credentials would reject everything if it built one.
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    settings.CHRONOSX_VENUE = "weex"
    monkeypatch.setattr("exchange.venues.venue_for", lambda name: pytest.fail("a node built a venue"))

    assert nodes.node_vote(proposal_id=proposal_id, node="execution").verdict == "approve"


def test_the_portfolio_node_rereads_exposure_from_the_ledger(post, queues):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    # Exposure grew after the decision (a fill elsewhere): the portfolio node sees the ledger now.
    Position.objects.create(
        strategy=Strategy.objects.get(slug="demo"),
        instrument=Instrument.objects.get(symbol="BTCUSDT"),
        quantity=Decimal("15"),
        entry_notional=Decimal("999990"),
    )

    vote = nodes.node_vote(proposal_id=proposal_id, node="portfolio")

    assert vote.verdict == "reject"
    assert "asset_exposure: BTCUSDT exposure after order 1000055.0000 > maximum 1000000" in vote.reason
    assert nodes.node_vote(proposal_id=proposal_id, node="risk").verdict == "approve"


def test_a_node_process_refuses_to_vote_as_another_node(post, queues, settings):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    settings.CHRONOSX_NODE = "risk"

    assert nodes.node_vote(proposal_id=proposal_id, node="portfolio") is None

    assert not Vote.objects.filter(proposal_id=proposal_id).exists()
    refusal = AuditEvent.objects.get(proposal_id=proposal_id, kind="vote.refused")
    assert "this process is node 'risk'; it never loads or signs as 'portfolio'" in refusal.payload
    assert nodes.node_vote(proposal_id=proposal_id, node="risk").verdict == "approve"


def test_a_process_that_is_no_node_casts_no_vote(post, queues, settings):
    queues.stop("risk", "portfolio", "execution")
    proposal_id = post()
    settings.EMBEDDED_TASKS = False  # e.g. the web server or the governance worker in production

    assert [nodes.node_vote(proposal_id=proposal_id, node=n) for n in ("risk", "portfolio", "execution")] == [None] * 3
    assert not Vote.objects.filter(proposal_id=proposal_id).exists()


def test_a_blocked_decision_goes_to_no_vote(api, seeded):
    # Trading stays halted: the decision is a block.

    response = post_proposal(api)
    body = response.json()
    assert body["status"] == "blocked" and body["quorum"] is None
    assert not Vote.objects.exists()


def test_quorum_required_comes_from_the_ruleset(api, post, queues):
    draft = ruleset_new_draft(source=ruleset_current(), actor="test")
    draft.quorum_required = 3
    draft.save()
    ruleset_publish(ruleset=draft, actor="test")
    queues.stop("execution")
    proposal_id = post()
    assert fetch(api, proposal_id)["quorum"]["required"] == 3
    assert Proposal.objects.get(id=proposal_id).status == "pending"

    queues.deliver_held()
    assert Proposal.objects.get(id=proposal_id).status in APPROVED


def test_the_documented_snippet_verifies_every_vote(api, post, queues, capsys):
    proposal_id = post()
    call_command("node_keys", "list")
    public_keys = {line.split()[1]: line.split()[2] for line in capsys.readouterr().out.splitlines()}
    code = re.search(r"## Checking a vote\n\n```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    body = fetch(api, proposal_id)

    assert namespace["quorum_holds"](body, public_keys) == (True, ["execution", "portfolio", "risk"])
    body["quorum"]["votes"][0]["signature"] = body["quorum"]["votes"][1]["signature"]
    assert namespace["quorum_holds"](body, public_keys)[1] == sorted(v["node"] for v in body["quorum"]["votes"][1:])


def test_a_proposal_decided_and_awaiting_votes_is_not_decided_again(api, post, queues):
    queues.stop("risk", "portfolio", "execution")  # decided, and pending while nobody votes
    proposal_id = post()
    assert fetch(api, proposal_id)["status"] == "pending"
    decided = audit_kinds(proposal_id).count("decision.made")

    assert proposal_evaluate(proposal_id=proposal_id) is None  # a redelivered task

    assert Decision.objects.filter(proposal_id=proposal_id).count() == 1
    assert audit_kinds(proposal_id).count("decision.made") == decided == 1
