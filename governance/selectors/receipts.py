"""Decision receipts: one self-contained object that anyone holding the nodes' public keys
(GET /api/v1/node-keys/) can verify offline, with no access to ChronosX.

A receipt carries the decision as it was signed (outcome, approved quantity, ruleset version,
every check and every input: the proposal, the context and the ruleset's params), the digests
computed from them, and every vote whose signature verifies, each with the exact object its
node signed. A verifier recomputes each digest from the receipt's own content and checks each
signature against it (clients/python: chronosx_client.verify_receipt), so a change to any byte
of the receipt makes it fail. Nothing unsigned is included (a vote's reason and time are not).
"""

from chronosx.canonical import canonical_json, sha256_hex
from governance.digests import vote_payload
from governance.models import Decision, Vote
from governance.selectors.proposals import proposal_get
from governance.selectors.quorum import decision_integrity_problem, quorum_required, vote_verifies

RECEIPT_TYPE = "chronosx.receipt.v1"


def proposal_receipt(*, agent, proposal_id) -> dict | None:
    """The receipt of a proposal the agent may see, once its quorum is met; None before."""
    proposal = proposal_get(agent=agent, proposal_id=proposal_id)
    decision = getattr(proposal, "decision", None) if proposal is not None else None
    if decision is None or decision.outcome == Decision.Outcome.BLOCK:
        return None
    if decision_integrity_problem(proposal=proposal, decision=decision):
        return None
    required = quorum_required(decision)
    votes = sorted(
        (vote for vote in proposal.votes.all() if vote.decision_digest == decision.digest and vote_verifies(vote)),
        key=lambda vote: vote.node,
    )
    approvals = {vote.node for vote in votes if vote.verdict == Vote.Verdict.APPROVE}
    if len(approvals) < required:
        return None
    inputs = decision.inputs
    return {
        "type": RECEIPT_TYPE,
        "proposal_id": str(proposal.id),
        "proposal_digest": sha256_hex(canonical_json(inputs["proposal"])),
        "ruleset": {"version": decision.ruleset_version, "digest": sha256_hex(canonical_json(inputs["rules"]))},
        "decision": {
            "outcome": decision.outcome,
            "approved_quantity": None if decision.approved_quantity is None else str(decision.approved_quantity),
            "ruleset_version": decision.ruleset_version,
            "checks": decision.checks,
            "inputs": inputs,
        },
        "decision_digest": decision.digest,
        "quorum": {"required": required},
        "votes": [
            {
                "node": vote.node,
                "verdict": vote.verdict,
                "key_id": vote.key_id,
                "signature": vote.signature,
                "signed": vote_payload(
                    proposal_id=proposal.id,
                    decision_digest=vote.decision_digest,
                    node=vote.node,
                    verdict=vote.verdict,
                    key_id=vote.key_id,
                ),
            }
            for vote in votes
        ],
    }
