"""MPC quorum: three nodes sign votes on a decision; only a quorum of verifying
approvals (2 of 3 by default, the ruleset's `quorum_required`) lets an order go on.

The signed message (docs/verifying-votes.md) is the SHA-256 hex digest of the
canonical JSON of {type, proposal_id, decision_digest, node, verdict, key_id}.
Every count here counts only votes whose Ed25519 signature verifies against the
public key registered for that node, over the digest of the decision as it is
stored now: a decision row edited after the votes invalidates them all.

Lifecycle: quorum_open (inside the evaluation's transaction) keeps the proposal
`pending` and, after commit, asks each node for its vote on the node's own queue.
vote_record tallies under the proposal's row lock: enough approvals -> `approved`
and routing is enqueued; too many rejects for a quorum -> `blocked`. quorum_sweep
re-asks missing nodes and expires proposals without quorum at the deadline.
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from chronosx.canonical import canonical_json, sha256_hex
from governance import engine, keys, selectors
from governance.models import Decision, Node, NodeKey, Proposal, Ruleset, Vote
from ledger.services import audit_record

log = logging.getLogger(__name__)

VOTE_MESSAGE_TYPE = "chronosx.vote.v1"
# A node that has not voted this long after the decision is asked again by the sweeper.
REREQUEST_AFTER_SECONDS = 2
# Statuses of proposals that never reached quorum: no certificate, whatever the votes say.
NEVER_APPROVED = ("pending", "blocked", "expired")


# --- the signed message -----------------------------------------------------------


def vote_payload(*, proposal_id, decision_digest: str, node: str, verdict: str, key_id: str) -> dict:
    return {
        "type": VOTE_MESSAGE_TYPE,
        "proposal_id": str(proposal_id),
        "decision_digest": decision_digest,
        "node": node,
        "verdict": verdict,
        "key_id": key_id,
    }


def vote_message(*, proposal_id, decision_digest: str, node: str, verdict: str, key_id: str) -> bytes:
    """The exact bytes a node signs: the 64 lowercase hex characters of the vote digest."""
    payload = vote_payload(proposal_id=proposal_id, decision_digest=decision_digest, node=node, verdict=verdict, key_id=key_id)
    return sha256_hex(canonical_json(payload)).encode("ascii")


def vote_signature_problem(*, proposal_id, node: str, verdict: str, key_id: str, decision_digest: str, signature: str) -> str | None:
    """Why a vote's signature does not count (None: it verifies against `node`'s registered key)."""
    registered = keys.public_key_lookup(key_id)
    if registered is None:
        return f"key {key_id} is not registered"
    key_node, public_key = registered
    if key_node != node:
        return f"key {key_id} belongs to node {key_node}, not {node}"
    message = vote_message(proposal_id=proposal_id, decision_digest=decision_digest, node=node, verdict=verdict, key_id=key_id)
    if not keys.signature_valid(public_key=public_key, message=message, signature=signature):
        return f"signature does not verify against key {key_id}"
    return None


def _vote_verifies(vote: Vote) -> bool:
    return (
        vote_signature_problem(
            proposal_id=vote.proposal_id,
            node=vote.node,
            verdict=vote.verdict,
            key_id=vote.key_id,
            decision_digest=vote.decision_digest,
            signature=vote.signature,
        )
        is None
    )


# --- the decision the votes are about ------------------------------------------------


def quorum_required(decision: Decision) -> int:
    """From the decision's own (digest-covered) rules; anything odd means all three."""
    try:
        required = int(decision.inputs["rules"]["quorum_required"])
    except (KeyError, TypeError, ValueError):
        return len(Node.values)
    return min(max(required, 1), len(Node.values))


def vote_deadline(decision: Decision):
    try:
        timeout = Decimal(str(decision.inputs["rules"]["vote_timeout_seconds"]))
    except Exception:
        timeout = Decimal(10)
    return decision.decided_at + timedelta(seconds=float(timeout))


def decision_digest_current(decision: Decision) -> str:
    """The digest of the decision row as stored now (not the digest column, which could be edited too)."""
    from governance.services import decision_digest

    return decision_digest(
        proposal_id=decision.proposal_id,
        outcome=decision.outcome,
        approved_quantity=decision.approved_quantity,
        ruleset_version=decision.ruleset_version,
        checks=decision.checks,
        inputs=decision.inputs,
    )


def decision_integrity_problem(*, proposal: Proposal, decision: Decision) -> str | None:
    """What every node (and the router, via the certificate) checks before trusting a
    decision: it is what the pure engine makes of its stored inputs, under the stored
    published ruleset, for the proposal as stored, and its digest is its own."""
    inputs = decision.inputs if isinstance(decision.inputs, dict) else {}
    if set(inputs) != {"proposal", "context", "rules"}:
        return "decision inputs are malformed"
    ruleset = Ruleset.objects.filter(pk=decision.ruleset_id).first()
    if ruleset is None or not ruleset.is_published or ruleset.version != decision.ruleset_version:
        return f"decision names ruleset v{decision.ruleset_version}, which is not the published ruleset it points to"
    if inputs["rules"] != ruleset.params:
        return f"decision rules differ from published ruleset v{ruleset.version}"
    if inputs["proposal"] != selectors.proposal_engine_input(proposal=proposal):
        return "the stored proposal differs from the proposal the decision was made on"
    try:
        result = engine.evaluate(**inputs)
    except Exception as exc:
        return f"decision inputs do not evaluate: {type(exc).__name__}: {exc}"
    stored_quantity = None if decision.approved_quantity is None else str(decision.approved_quantity)
    if result["outcome"] != decision.outcome or result["approved_quantity"] != stored_quantity:
        return (
            f"recomputed decision is {result['outcome']} {result['approved_quantity']}, "
            f"stored decision is {decision.outcome} {stored_quantity}"
        )
    if result["checks"] != decision.checks:
        return "recomputed checks differ from the stored checks"
    if decision_digest_current(decision) != decision.digest:
        return "decision digest does not match the stored decision"
    return None


# --- opening and recording ---------------------------------------------------------


def quorum_open(*, proposal, decision):
    """Start the vote (inside the evaluation's transaction); nodes are asked after commit."""
    audit_record(
        kind="quorum.opened",
        actor="governance",
        proposal_id=proposal.id,
        payload={
            "required": quorum_required(decision),
            "nodes": list(Node.values),
            "decision_digest": decision.digest,
            "deadline": vote_deadline(decision).isoformat(),
        },
    )
    proposal_id = proposal.id
    transaction.on_commit(lambda: votes_request(proposal_id=proposal_id, nodes=list(Node.values)), robust=True)


def votes_request(*, proposal_id, nodes) -> int:
    """Ask each node for its vote, each on its own queue. One broken send does not stop the others."""
    sent = 0
    for node in nodes:
        try:
            _enqueue_vote(proposal_id, node)
            sent += 1
        except Exception:
            log.exception("could not ask node %s to vote on %s; the sweeper asks again", node, proposal_id)
    return sent


def _enqueue_vote(proposal_id, node):
    from governance.tasks import node_vote_task

    node_vote_task.apply_async(args=[str(proposal_id), node], queue=node)


def _refuse(*, proposal_id, node, why: str, details: dict | None = None) -> None:
    log.warning("vote of %s on %s refused: %s", node, proposal_id, why)
    audit_record(
        kind="vote.refused",
        actor=f"node:{node}",
        proposal_id=proposal_id,
        payload={"node": node, "reason": why, **(details or {})},
    )


@transaction.atomic
def vote_record(
    *, proposal_id, node: str, verdict: str, reason: str, key_id: str, decision_digest: str, signature: str, cast_at=None
) -> Vote | None:
    """Record one signed vote and tally. Returns the vote, or None when refused (audited).

    Refused: an unknown node or verdict, a key not registered (or retired) for that
    node, a signature that does not verify, a second vote from the same node, an
    approval of anything but the stored decision, a vote after the deadline.
    """
    cast_at = cast_at or timezone.now()
    details = {"verdict": verdict, "key_id": key_id, "decision_digest": decision_digest, "signature": signature}
    # The row lock serializes the votes of one proposal: each tally sees every earlier vote.
    proposal = Proposal.objects.select_for_update().filter(id=proposal_id).first()
    if proposal is None:
        return _refuse(proposal_id=None, node=node, why=f"no such proposal {proposal_id}", details=details)
    if node not in Node.values or verdict not in Vote.Verdict.values:
        return _refuse(proposal_id=proposal_id, node=node, why="unknown node or verdict", details=details)
    decision = Decision.objects.filter(proposal_id=proposal_id).first()
    if decision is None or decision.outcome == Decision.Outcome.BLOCK:
        return _refuse(proposal_id=proposal_id, node=node, why="no decision open to a vote", details=details)
    problem = vote_signature_problem(
        proposal_id=proposal_id, node=node, verdict=verdict, key_id=key_id, decision_digest=decision_digest, signature=signature
    )
    if problem:
        return _refuse(proposal_id=proposal_id, node=node, why=f"bad signature: {problem}", details=details)
    if not NodeKey.objects.filter(key_id=key_id, active=True).exists():
        return _refuse(proposal_id=proposal_id, node=node, why=f"key {key_id} is retired", details=details)
    if verdict == Vote.Verdict.APPROVE and decision_digest != decision.digest:
        return _refuse(proposal_id=proposal_id, node=node, why="approval of a decision digest other than the stored one", details=details)
    if proposal.status == Proposal.Status.EXPIRED or timezone.now() > vote_deadline(decision):
        _expire_locked(proposal=proposal, decision=decision)
        return _refuse(proposal_id=proposal_id, node=node, why="vote deadline passed", details=details)
    try:
        with transaction.atomic():  # the constraint decides, even between two racing processes
            vote = Vote.objects.create(
                proposal=proposal,
                node=node,
                verdict=verdict,
                reason=reason[:500],
                cast_at=cast_at,
                key_id=key_id,
                decision_digest=decision_digest,
                signature=signature,
            )
    except IntegrityError:
        return _refuse(proposal_id=proposal_id, node=node, why=f"node {node} has already voted", details=details)
    audit_record(
        kind="vote.cast",
        actor=f"node:{node}",
        proposal_id=proposal_id,
        payload={"node": node, "reason": vote.reason, "cast_at": cast_at.isoformat(), **details},
    )
    _tally_locked(proposal=proposal, decision=decision)
    return vote


def _count(*, proposal, decision) -> dict:
    """Verifying votes only. An approval counts only if it signs the decision as stored now."""
    current = decision_digest_current(decision)
    intact = current == decision.digest
    approvals, rejects = [], []
    for vote in Vote.objects.filter(proposal_id=proposal.id):
        if not _vote_verifies(vote):
            continue
        if vote.verdict == Vote.Verdict.APPROVE and intact and vote.decision_digest == current:
            approvals.append(vote.node)
        else:
            rejects.append(vote.node)
    required = quorum_required(decision)
    return {"required": required, "approvals": sorted(approvals), "others": sorted(rejects)}


def _tally_locked(*, proposal, decision):
    from governance.services import proposal_transition

    if proposal.status != Proposal.Status.PENDING:
        return
    count = _count(proposal=proposal, decision=decision)
    required, approvals = count["required"], len(count["approvals"])
    undecided = len(Node.values) - approvals - len(count["others"])
    if approvals >= required:
        reason = f"quorum met: {approvals} of {len(Node.values)} nodes approve ({', '.join(count['approvals'])}); {required} required"
        if proposal_transition(proposal_id=proposal.id, to=Proposal.Status.APPROVED, actor="quorum", reason=reason, extra={"quorum": count}):
            audit_record(kind="quorum.met", actor="quorum", proposal_id=proposal.id, payload={**count, "decision_digest": decision.digest})
            proposal_id = proposal.id
            transaction.on_commit(lambda: enqueue_routing(proposal_id), robust=True)
    elif approvals + undecided < required:
        reason = f"quorum impossible: {len(count['others'])} of {len(Node.values)} nodes do not approve; {required} approvals required"
        if proposal_transition(proposal_id=proposal.id, to=Proposal.Status.BLOCKED, actor="quorum", reason=reason, extra={"quorum": count}):
            audit_record(kind="quorum.failed", actor="quorum", proposal_id=proposal.id, payload={**count, "decision_digest": decision.digest})


def _expire_locked(*, proposal, decision) -> bool:
    from governance.services import proposal_transition

    if proposal.status != Proposal.Status.PENDING:
        return False
    count = _count(proposal=proposal, decision=decision)
    timeout = decision.inputs.get("rules", {}).get("vote_timeout_seconds")
    reason = f"no quorum within {timeout}s: {len(count['approvals'])} of {count['required']} required approvals"
    if proposal_transition(proposal_id=proposal.id, to=Proposal.Status.EXPIRED, actor="quorum", reason=reason, extra={"quorum": count}):
        audit_record(kind="quorum.expired", actor="quorum", proposal_id=proposal.id, payload={**count, "decision_digest": decision.digest})
        return True
    return False


def enqueue_routing(proposal_id):
    from exchange.tasks import order_route_task

    order_route_task.delay(str(proposal_id))


# --- the sweeper ----------------------------------------------------------------------


def quorum_sweep(*, now) -> dict:
    """Expire proposals whose vote deadline passed without quorum; ask missing nodes again."""
    from governance.services import proposals_claim_for_sweep

    open_votes = (
        Decision.objects.filter(proposal__status=Proposal.Status.PENDING)
        .exclude(outcome=Decision.Outcome.BLOCK)
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
        elif now - decision.decided_at >= timedelta(seconds=REREQUEST_AFTER_SECONDS):
            voted = set(Vote.objects.filter(proposal_id=decision.proposal_id).values_list("node", flat=True))
            missing = [node for node in Node.values if node not in voted]
            if missing and proposals_claim_for_sweep(
                proposal_ids=[decision.proposal_id], now=now, every_seconds=REREQUEST_AFTER_SECONDS
            ):
                rerequested += votes_request(proposal_id=decision.proposal_id, nodes=missing)
    return {"quorum_expired": expired, "votes_rerequested": rerequested}


# --- reading ----------------------------------------------------------------------------


def quorum_summary(*, proposal) -> dict | None:
    """The CONTRACT `quorum` object; None until voting starts (and for blocked decisions)."""
    decision = getattr(proposal, "decision", None)
    if decision is None or decision.outcome == Decision.Outcome.BLOCK:
        return None
    required = quorum_required(decision)
    votes, approvals = [], 0
    for vote in sorted(proposal.votes.all(), key=lambda v: (v.cast_at, v.node)):
        verified = _vote_verifies(vote)
        if verified and vote.verdict == Vote.Verdict.APPROVE and vote.decision_digest == decision.digest:
            approvals += 1
        votes.append(
            {
                "node": vote.node,
                "verdict": vote.verdict,
                "reason": vote.reason,
                "cast_at": vote.cast_at,
                "signature": vote.signature,
                "key_id": vote.key_id,
                "decision_digest": vote.decision_digest,
                "verified": verified,
            }
        )
    return {"required": required, "approvals": approvals, "met": approvals >= required, "votes": votes}


def quorum_certificate_verify(*, proposal) -> tuple[bool, str]:
    """Whether the proposal carries a valid quorum certificate, checked from the database
    now: enough verifying approvals from distinct nodes, each signing the digest of the
    decision as it is stored now, and that decision intact. The router calls this
    before it sends anything."""
    proposal = Proposal.objects.select_related("strategy", "instrument").filter(id=proposal.id).first()
    if proposal is None:
        return False, "no such proposal"
    if proposal.status in NEVER_APPROVED:
        return False, f"proposal is {proposal.status}, not approved"
    decision = Decision.objects.filter(proposal_id=proposal.id).first()
    if decision is None or decision.outcome == Decision.Outcome.BLOCK:
        return False, "no decision that allows an order"
    problem = decision_integrity_problem(proposal=proposal, decision=decision)
    if problem:
        return False, f"decision fails integrity: {problem}"
    count = _count(proposal=proposal, decision=decision)
    approvals, required = count["approvals"], count["required"]
    if len(approvals) < required:
        return False, f"{len(approvals)} verifying approvals of the current decision; {required} required"
    return True, f"quorum certificate valid: {len(approvals)} verifying approvals ({', '.join(approvals)}); {required} required"
