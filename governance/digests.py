"""What is hashed and signed: the decision digest that MPC votes sign, the force record of a
forced proposal (signed with it), and the vote message.

Both are canonical JSON (chronosx.canonical), so anyone holding the stored rows and the
registered public keys can recompute them (docs/verifying-votes.md).
"""

from chronosx.canonical import canonical_json, sha256_hex

VOTE_MESSAGE_TYPE = "chronosx.vote.v1"
FORCE_RECORD_TYPE = "chronosx.force.v1"


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


def force_digest(
    *, proposal_id, decision_digest: str, reason: str, requested_by: str, requested_at: str, expires_at: str,
    approved_by: str, approved_at: str, overrides: list,
) -> str:
    """SHA-256 over a force record, canonically: who asked, why, who granted it and when, for
    which decision, and which failed checks it overrides (times as ISO-8601 text)."""
    return sha256_hex(
        canonical_json(
            {
                "type": FORCE_RECORD_TYPE,
                "proposal_id": str(proposal_id),
                "decision_digest": decision_digest,
                "reason": reason,
                "requested_by": requested_by,
                "requested_at": requested_at,
                "expires_at": expires_at,
                "approved_by": approved_by,
                "approved_at": approved_at,
                "overrides": list(overrides),
            }
        )
    )


def force_row_digest(force) -> str:
    """The digest of a ForceRequest row as stored now (not its digest column)."""
    return force_digest(
        proposal_id=force.proposal_id,
        decision_digest=force.decision_digest,
        reason=force.reason,
        requested_by=force.requested_by,
        requested_at=force.requested_at.isoformat(),
        expires_at=force.expires_at.isoformat(),
        approved_by=force.approved_by,
        approved_at=force.approved_at.isoformat() if force.approved_at else "",
        overrides=force.overrides,
    )


def vote_payload(*, proposal_id, decision_digest: str, node: str, verdict: str, key_id: str, force_digest: str = "") -> dict:
    """What a vote says. A vote on a forced proposal also carries the force record's digest
    (`force_digest`), so its signature covers the record; other votes have no such key."""
    payload = {
        "type": VOTE_MESSAGE_TYPE,
        "proposal_id": str(proposal_id),
        "decision_digest": decision_digest,
        "node": node,
        "verdict": verdict,
        "key_id": key_id,
    }
    if force_digest:
        payload["force_digest"] = force_digest
    return payload


def vote_message(*, proposal_id, decision_digest: str, node: str, verdict: str, key_id: str, force_digest: str = "") -> bytes:
    """The exact bytes a node signs: the 64 lowercase hex characters of the vote digest."""
    payload = vote_payload(
        proposal_id=proposal_id, decision_digest=decision_digest, node=node, verdict=verdict, key_id=key_id, force_digest=force_digest
    )
    return sha256_hex(canonical_json(payload)).encode("ascii")
