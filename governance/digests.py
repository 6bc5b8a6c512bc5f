"""What is hashed and signed: the decision digest that MPC votes sign, and the vote message.

Both are canonical JSON (chronosx.canonical), so anyone holding the stored rows and the
registered public keys can recompute them (docs/verifying-votes.md).
"""

from chronosx.canonical import canonical_json, sha256_hex

VOTE_MESSAGE_TYPE = "chronosx.vote.v1"


def decision_digest(*, proposal_id, outcome, approved_quantity, ruleset_version, checks, inputs) -> str:
    """SHA-256 over everything the decision is, canonically."""
    return sha256_hex(
        canonical_json(
            {
                "proposal_id": str(proposal_id),
                "outcome": outcome,
                "approved_quantity": None if approved_quantity is None else str(approved_quantity),
                "ruleset_version": ruleset_version,
                "checks": checks,
                "inputs": inputs,
            }
        )
    )


def decision_row_digest(decision) -> str:
    """The digest of a Decision row as stored now (not its digest column, which could be edited too)."""
    return decision_digest(
        proposal_id=decision.proposal_id,
        outcome=decision.outcome,
        approved_quantity=decision.approved_quantity,
        ruleset_version=decision.ruleset_version,
        checks=decision.checks,
        inputs=decision.inputs,
    )


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
