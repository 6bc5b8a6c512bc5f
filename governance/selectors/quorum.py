"""Reading the MPC quorum: which votes count, whether a decision is intact, the certificate.

Every count here counts only votes whose Ed25519 signature verifies against the public
key registered for that node, over the digest of the decision as it is stored now: a
decision row edited after the votes invalidates them all.
"""

from datetime import timedelta
from decimal import Decimal

from governance import engine, keys
from governance.digests import decision_row_digest, force_row_digest, vote_message
from governance.models import Decision, ForceRequest, Node, Proposal, Vote
from governance.selectors.controls import quorum_size
from governance.selectors.forcing import force_record, force_record_problem
from governance.selectors.proposals import proposal_engine_input

# Statuses of proposals that never reached quorum: no certificate, whatever the votes say.
NEVER_APPROVED = (Proposal.Status.PENDING, Proposal.Status.BLOCKED, Proposal.Status.EXPIRED)


def vote_signature_problem(
    *, proposal_id, node: str, verdict: str, key_id: str, decision_digest: str, signature: str, force_digest: str = ""
) -> str | None:
    """Why a vote's signature does not count (None: it verifies against `node`'s registered key)."""
    registered = keys.public_key_lookup(key_id)
    if registered is None:
        return f"key {key_id} is not registered"
    key_node, public_key = registered
    if key_node != node:
        return f"key {key_id} belongs to node {key_node}, not {node}"
    message = vote_message(
        proposal_id=proposal_id, decision_digest=decision_digest, node=node, verdict=verdict, key_id=key_id, force_digest=force_digest
    )
    if not keys.signature_valid(public_key=public_key, message=message, signature=signature):
        return f"signature does not verify against key {key_id}"
    return None


def vote_verifies(vote: Vote) -> bool:
    return (
        vote_signature_problem(
            proposal_id=vote.proposal_id,
            node=vote.node,
            verdict=vote.verdict,
            key_id=vote.key_id,
            decision_digest=vote.decision_digest,
            signature=vote.signature,
            force_digest=vote.force_digest,
        )
        is None
    )


def force_digest_expected(decision: Decision) -> str | None:
    """The force digest an approval of this decision must sign: "" for a decision that allows
    an order by itself; for a block, its force record's digest as stored now (None, nothing
    counts, without an intact record)."""
    if decision.outcome != Decision.Outcome.BLOCK:
        return ""
    force = force_record(proposal_id=decision.proposal_id)
    if force is None:
        return None
    current = force_row_digest(force)
    return current if current == force.digest else None


def voting_open(decision: Decision) -> bool:
    """Whether nodes vote on this decision: one that allows an order, or a block under a force record."""
    return decision.outcome != Decision.Outcome.BLOCK or force_record(proposal_id=decision.proposal_id) is not None


def quorum_required(decision: Decision) -> int:
    """From the decision's own (digest-covered) rules."""
    rules = decision.inputs.get("rules") if isinstance(decision.inputs, dict) else None
    return quorum_size(rules if isinstance(rules, dict) else {})


def vote_opened_at(decision: Decision):
    """When the vote on this decision began: when it was made, or for a forced proposal when the force was approved."""
    if decision.outcome == Decision.Outcome.BLOCK:
        force = force_record(proposal_id=decision.proposal_id)
        if force is not None and force.approved_at is not None:
            return force.approved_at
    return decision.decided_at


def vote_deadline(decision: Decision):
    try:
        timeout = Decimal(str(decision.inputs["rules"]["vote_timeout_seconds"]))
    except Exception:
        timeout = Decimal(10)
    return vote_opened_at(decision) + timedelta(seconds=float(timeout))


def decision_integrity_problem(*, proposal: Proposal, decision: Decision) -> str | None:
    """What every node (and the router, via the certificate) checks before trusting a
    decision: it is what the pure engine makes of its stored inputs, under the stored
    published ruleset, for the proposal as stored, and its digest is its own."""
    inputs = decision.inputs if isinstance(decision.inputs, dict) else {}
    if set(inputs) != {"proposal", "context", "rules"}:
        return "decision inputs are malformed"
    ruleset = decision.ruleset  # one query, or none where the caller read it with the decision
    if not ruleset.is_published or ruleset.version != decision.ruleset_version:
        return f"decision names ruleset v{decision.ruleset_version}, which is not the published ruleset it points to"
    if inputs["rules"] != ruleset.params:
        return f"decision rules differ from published ruleset v{ruleset.version}"
    if inputs["proposal"] != proposal_engine_input(proposal=proposal):
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
    if decision_row_digest(decision) != decision.digest:
        return "decision digest does not match the stored decision"
    return None


def votes_counted(*, proposal, decision, votes=None) -> dict:
    """Verifying votes only. An approval counts only if it signs the decision as stored now.
    `votes`: the proposal's votes, when the caller has read them under the proposal's lock."""
    current = decision_row_digest(decision)
    intact = current == decision.digest
    forced = force_digest_expected(decision)
    approvals, rejects = [], []
    for vote in Vote.objects.filter(proposal_id=proposal.id) if votes is None else votes:
        if not vote_verifies(vote):
            continue
        if (
            vote.verdict == Vote.Verdict.APPROVE
            and intact
            and vote.decision_digest == current
            and forced is not None
            and vote.force_digest == forced
        ):
            approvals.append(vote.node)
        else:
            rejects.append(vote.node)
    return {"required": quorum_required(decision), "approvals": sorted(approvals), "others": sorted(rejects)}


def quorum_summary(*, proposal) -> dict | None:
    """The CONTRACT `quorum` object; None until voting starts (and for blocked decisions, unless forced)."""
    decision = getattr(proposal, "decision", None)
    if decision is None:
        return None
    forced = ""
    if decision.outcome == Decision.Outcome.BLOCK:
        # (force_requests prefetched by the proposal selectors: no query per proposal listed)
        force = next((f for f in proposal.force_requests.all() if f.status == ForceRequest.Status.APPROVED), None)
        if force is None:
            return None  # blocked, and never voted on
        forced = force.digest if force_row_digest(force) == force.digest else None
    required = quorum_required(decision)
    votes, approvals = [], 0
    for vote in sorted(proposal.votes.all(), key=lambda v: (v.cast_at, v.node)):
        verified = vote_verifies(vote)
        if (
            verified
            and vote.verdict == Vote.Verdict.APPROVE
            and vote.decision_digest == decision.digest
            and forced is not None
            and vote.force_digest == forced
        ):
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
                "force_digest": vote.force_digest or None,
                "verified": verified,
            }
        )
    return {"required": required, "approvals": approvals, "met": approvals >= required, "votes": votes}


# What checking a decision reads with its proposal (decision_integrity_problem, the nodes'
# reviews, the router's certificate check): one query for all of it.
DECISION_CHECK_RELATED = ("strategy", "instrument", "decision__ruleset")


def quorum_certificate_verify(*, proposal_id) -> tuple[bool, str]:
    """Whether the proposal carries a valid quorum certificate, checked from the database now."""
    proposal = Proposal.objects.select_related(*DECISION_CHECK_RELATED).filter(id=proposal_id).first()
    if proposal is None:
        return False, "no such proposal"
    return quorum_certificate_check(proposal=proposal)


def quorum_certificate_check(*, proposal) -> tuple[bool, str]:
    """Whether `proposal`, just read with DECISION_CHECK_RELATED, carries a valid quorum
    certificate: enough verifying approvals from distinct nodes, each signing the digest of
    the decision as it is stored now, and that decision intact. The router calls this before
    it sends anything, on the proposal it has just read."""
    if proposal.status in NEVER_APPROVED:
        return False, f"proposal is {proposal.status}, not approved"
    decision = getattr(proposal, "decision", None)
    if decision is None:
        return False, "no decision that allows an order"
    force = force_record(proposal_id=proposal.id) if decision.outcome == Decision.Outcome.BLOCK else None
    if decision.outcome == Decision.Outcome.BLOCK and force is None:
        return False, "no decision that allows an order"
    problem = decision_integrity_problem(proposal=proposal, decision=decision)
    if problem:
        return False, f"decision fails integrity: {problem}"
    if force is not None:
        problem = force_record_problem(proposal=proposal, decision=decision, force=force)
        if problem:
            return False, f"force record fails: {problem}"
    count = votes_counted(proposal=proposal, decision=decision)
    approvals, required = count["approvals"], count["required"]
    if len(approvals) < required:
        return False, f"{len(approvals)} verifying approvals of the current decision; {required} required"
    forced = f" over force record {force.digest[:12]}…" if force is not None else ""
    return True, f"quorum certificate valid: {len(approvals)} verifying approvals ({', '.join(approvals)}){forced}; {required} required"


def nodes_missing_votes(*, proposal_id) -> list[str]:
    voted = set(Vote.objects.filter(proposal_id=proposal_id).values_list("node", flat=True))
    return [node for node in Node.values if node not in voted]
