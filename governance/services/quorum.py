"""MPC quorum: three nodes sign votes on a decision; only a quorum of verifying
approvals (2 of 3 by default, the ruleset's `quorum_required`) lets an order go on.

Lifecycle: quorum_open (inside the evaluation's transaction) keeps the proposal
`pending` and, after commit, asks each node for its vote on the node's own queue.
vote_record tallies under the proposal's row lock: enough approvals -> `approved`
and routing is enqueued; too many rejects for a quorum -> `blocked`. quorum_sweep
re-asks missing nodes and expires proposals without quorum at the deadline.
The signed message is governance.digests.vote_message (docs/verifying-votes.md).
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, Q
from django.utils import timezone

from chronosx import metrics, pipeline
from governance.models import Decision, ForceRequest, Node, NodeKey, Proposal, Vote
from governance.selectors.quorum import (
    force_digest_expected,
    nodes_missing_votes,
    quorum_required,
    vote_deadline,
    vote_opened_at,
    vote_signature_problem,
    votes_counted,
    voting_open,
)
from governance.services.proposals import proposal_transition, proposals_claim_for_sweep
from ledger.services import audit_record

log = logging.getLogger(__name__)

ACTOR = "quorum"
# A node that has not voted this long after the decision is asked again by the sweeper.
REREQUEST_AFTER_SECONDS = 2


def quorum_open(*, proposal, decision, force_digest: str = ""):
    """Start the vote (inside the evaluation's transaction, or a force approval's); nodes are
    asked after commit. A forced proposal's vote is on the decision and its force record."""
    audit_record(
        kind="quorum.opened",
        actor="governance",
        proposal_id=proposal.id,
        payload={
            "required": quorum_required(decision),
            "nodes": list(Node.values),
            "decision_digest": decision.digest,
            "deadline": vote_deadline(decision).isoformat(),
            **({"force_digest": force_digest} if force_digest else {}),
        },
    )
    for node in Node.values:
        pipeline.after_commit(pipeline.VOTE, proposal.id, node, queue=node)


def votes_request(*, proposal_id, nodes) -> int:
    """Ask each node for its vote now, each on its own queue. One broken send does not stop the others."""
    sent = 0
    for node in nodes:
        try:
            pipeline.enqueue(pipeline.VOTE, proposal_id, node, queue=node)
            sent += 1
        except Exception:
            log.exception("could not ask node %s to vote on %s; the sweeper asks again", node, proposal_id)
    return sent


def vote_refuse(*, proposal_id, node, why: str, details: dict | None = None) -> None:
    """A vote that does not count, audited with why."""
    log.warning("vote of %s on %s refused: %s", node, proposal_id, why)
    audit_record(
        kind="vote.refused",
        actor=f"node:{node}",
        proposal_id=proposal_id,
        payload={"node": node, "reason": why, **(details or {})},
    )


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def vote_record(
    *, proposal_id, node: str, verdict: str, reason: str, key_id: str, decision_digest: str, signature: str, cast_at=None,
    force_digest: str = "",
) -> Vote | None:
    """Record one signed vote and tally. Returns the vote, or None when refused (audited).

    Refused: an unknown node or verdict, a key not registered (or retired) for that
    node, a signature that does not verify, a second vote from the same node, an
    approval of anything but the stored decision (and, for a forced proposal, its force
    record as stored), a vote after the deadline.
    """
    cast_at = cast_at or timezone.now()
    details = {"verdict": verdict, "key_id": key_id, "decision_digest": decision_digest, "signature": signature}
    if force_digest:
        details["force_digest"] = force_digest
    # The row lock serializes the votes of one proposal: each tally sees every earlier vote.
    # (The decision, and whether the key is registered and active, come in the same read; only
    # the proposal's row is locked.)
    proposal = (
        Proposal.objects.select_for_update(of=("self",))
        .select_related("decision")
        .annotate(key_active=Exists(NodeKey.objects.filter(key_id=key_id, active=True)))
        .filter(id=proposal_id)
        .first()
    )
    if proposal is None:
        return vote_refuse(proposal_id=None, node=node, why=f"no such proposal {proposal_id}", details=details)
    if node not in Node.values or verdict not in Vote.Verdict.values:
        return vote_refuse(proposal_id=proposal_id, node=node, why="unknown node or verdict", details=details)
    decision = getattr(proposal, "decision", None)
    if decision is None or not voting_open(decision):
        return vote_refuse(proposal_id=proposal_id, node=node, why="no decision open to a vote", details=details)
    problem = vote_signature_problem(
        proposal_id=proposal_id, node=node, verdict=verdict, key_id=key_id, decision_digest=decision_digest, signature=signature,
        force_digest=force_digest,
    )
    if problem:
        return vote_refuse(proposal_id=proposal_id, node=node, why=f"bad signature: {problem}", details=details)
    if not proposal.key_active:
        return vote_refuse(proposal_id=proposal_id, node=node, why=f"key {key_id} is retired", details=details)
    if verdict == Vote.Verdict.APPROVE and decision_digest != decision.digest:
        return vote_refuse(
            proposal_id=proposal_id, node=node, why="approval of a decision digest other than the stored one", details=details
        )
    if verdict == Vote.Verdict.APPROVE and force_digest != force_digest_expected(decision):
        return vote_refuse(
            proposal_id=proposal_id, node=node, why="approval of a force record other than the stored one", details=details
        )
    if proposal.status == Proposal.Status.EXPIRED or timezone.now() > vote_deadline(decision):
        _expire_locked(proposal=proposal, decision=decision)
        return vote_refuse(proposal_id=proposal_id, node=node, why="vote deadline passed", details=details)
    # Votes are written only here, under the proposal's lock: what this read finds is every vote
    # there is, so a second vote of a node is refused before the insert (the unique constraint
    # stays as the last word), and the tally needs no second read.
    votes = list(Vote.objects.filter(proposal_id=proposal_id))
    if any(earlier.node == node for earlier in votes):
        return vote_refuse(proposal_id=proposal_id, node=node, why=f"node {node} has already voted", details=details)
    vote = Vote.objects.create(
        proposal=proposal,
        node=node,
        verdict=verdict,
        reason=reason[:500],
        cast_at=cast_at,
        key_id=key_id,
        decision_digest=decision_digest,
        force_digest=force_digest,
        signature=signature,
    )
    audit_record(
        kind="vote.cast",
        actor=f"node:{node}",
        proposal_id=proposal_id,
        payload={"node": node, "reason": vote.reason, "cast_at": cast_at.isoformat(), **details},
    )
    metrics.vote_cast(node=node, verdict=verdict)
    _tally_locked(proposal=proposal, decision=decision, votes=[*votes, vote])
    return vote


def _tally_locked(*, proposal, decision, votes=None):
    if proposal.status != Proposal.Status.PENDING:
        return
    count = votes_counted(proposal=proposal, decision=decision, votes=votes)
    required, approvals = count["required"], len(count["approvals"])
    undecided = len(Node.values) - approvals - len(count["others"])
    if approvals >= required:
        reason = f"quorum met: {approvals} of {len(Node.values)} nodes approve ({', '.join(count['approvals'])}); {required} required"
        if proposal_transition(proposal_id=proposal.id, to=Proposal.Status.APPROVED, actor=ACTOR, reason=reason, extra={"quorum": count}):
            audit_record(kind="quorum.met", actor=ACTOR, proposal_id=proposal.id, payload={**count, "decision_digest": decision.digest})
            pipeline.after_commit(pipeline.ROUTE, proposal.id)
    elif approvals + undecided < required:
        reason = f"quorum impossible: {len(count['others'])} of {len(Node.values)} nodes do not approve; {required} approvals required"
        if proposal_transition(proposal_id=proposal.id, to=Proposal.Status.BLOCKED, actor=ACTOR, reason=reason, extra={"quorum": count}):
            audit_record(kind="quorum.failed", actor=ACTOR, proposal_id=proposal.id, payload={**count, "decision_digest": decision.digest})


def _expire_locked(*, proposal, decision) -> bool:
    if proposal.status != Proposal.Status.PENDING:
        return False
    count = votes_counted(proposal=proposal, decision=decision)
    timeout = decision.inputs.get("rules", {}).get("vote_timeout_seconds")
    reason = f"no quorum within {timeout}s: {len(count['approvals'])} of {count['required']} required approvals"
    if proposal_transition(
        proposal_id=proposal.id,
        to=Proposal.Status.EXPIRED,
        actor=ACTOR,
        reason=reason,
        only_from=(Proposal.Status.PENDING,),
        extra={"quorum": count},
    ):
        audit_record(kind="quorum.expired", actor=ACTOR, proposal_id=proposal.id, payload={**count, "decision_digest": decision.digest})
        return True
    return False


def quorum_sweep(*, now) -> dict:
    """Expire proposals whose vote deadline passed without quorum; ask missing nodes again."""
    # Decisions that allow an order, and blocks a force approval reopened (pending again).
    open_votes = (
        Decision.objects.filter(proposal__status=Proposal.Status.PENDING)
        .exclude(Q(outcome=Decision.Outcome.BLOCK) & ~Q(proposal__force_requests__status=ForceRequest.Status.APPROVED))
        .order_by("decided_at")[:500]
    )
    expired = rerequested = 0
    for decision in open_votes:
        if now >= vote_deadline(decision):
            with transaction.atomic():
                proposal = Proposal.objects.select_for_update().filter(id=decision.proposal_id).first()
                if proposal is not None:
                    # A vote may have completed the quorum just before the deadline.
                    _tally_locked(proposal=proposal, decision=decision)
                    proposal.refresh_from_db(fields=["status"])
                    expired += _expire_locked(proposal=proposal, decision=decision)
        elif now - vote_opened_at(decision) >= timedelta(seconds=REREQUEST_AFTER_SECONDS):
            missing = nodes_missing_votes(proposal_id=decision.proposal_id)
            if missing and proposals_claim_for_sweep(
                proposal_ids=[decision.proposal_id], now=now, every_seconds=REREQUEST_AFTER_SECONDS
            ):
                rerequested += votes_request(proposal_id=decision.proposal_id, nodes=missing)
    return {"quorum_expired": expired, "votes_rerequested": rerequested}
