"""Offline verification of a ChronosX decision receipt (GET /api/v1/proposals/{id}/receipt/)
with the nodes' public keys (GET /api/v1/node-keys/). Needs nothing of ChronosX.

Every digest is recomputed from the receipt's own content, and every vote's signature is
checked over the exact object its node signed; a receipt changed in any byte fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

RECEIPT_TYPE = "chronosx.receipt.v1"
VOTE_TYPE = "chronosx.vote.v1"
NODES = ("risk", "portfolio", "execution")


def canonical_json(value: Any) -> str:
    """The one byte-exact form ChronosX hashes and signs: keys sorted, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def decision_digest(*, proposal_id: str, decision: dict) -> str:
    return sha256_hex(
        {
            "proposal_id": proposal_id,
            "outcome": decision["outcome"],
            "approved_quantity": decision["approved_quantity"],
            "ruleset_version": decision["ruleset_version"],
            "checks": decision["checks"],
            "inputs": decision["inputs"],
        }
    )


def verify_receipt(receipt: dict, node_keys: list) -> bool:
    """True only when the receipt is intact and carries at least `quorum.required` valid
    approving signatures from distinct nodes, each by a key `node_keys` lists for that node."""
    try:
        return _problem(receipt, node_keys) is None
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def receipt_problem(receipt: dict, node_keys: list) -> str | None:
    """Why the receipt does not verify (None: it does)."""
    try:
        return _problem(receipt, node_keys)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"malformed receipt: {exc!r}"


def _problem(receipt: dict, node_keys: list) -> str | None:
    expected_keys = {"type", "proposal_id", "proposal_digest", "ruleset", "decision", "decision_digest", "quorum", "votes"}
    if not isinstance(receipt, dict) or set(receipt) != expected_keys:
        return "not a receipt: unexpected fields"
    if receipt["type"] != RECEIPT_TYPE:
        return f"type is {receipt['type']!r}, not {RECEIPT_TYPE}"
    proposal_id, decision = receipt["proposal_id"], receipt["decision"]
    inputs = decision["inputs"]
    if sha256_hex(inputs["proposal"]) != receipt["proposal_digest"]:
        return "proposal digest does not match the proposal"
    rules = inputs["rules"]
    ruleset = receipt["ruleset"]
    if set(ruleset) != {"version", "digest"} or sha256_hex(rules) != ruleset["digest"]:
        return "ruleset digest does not match the ruleset's params"
    if not (ruleset["version"] == decision["ruleset_version"] == rules.get("version", decision["ruleset_version"])):
        return "ruleset versions disagree"
    if decision_digest(proposal_id=proposal_id, decision=decision) != receipt["decision_digest"]:
        return "decision digest does not match the decision"
    if decision["outcome"] not in ("approve", "modify"):
        return f"a {decision['outcome']} decision is never executed"
    required = receipt["quorum"]["required"]
    if set(receipt["quorum"]) != {"required"} or type(required) is not int or required != rules.get("quorum_required", 2):
        return "quorum.required is not the ruleset's"
    if required < 2:
        return "a quorum below 2 of 3 is not a quorum"
    keys = {key["key_id"]: key for key in node_keys}
    approvals = set()
    for vote in receipt["votes"]:
        problem = _vote_problem(vote, proposal_id=proposal_id, digest=receipt["decision_digest"], keys=keys)
        if problem:
            return problem
        if vote["verdict"] == "approve":
            if vote["node"] in approvals:
                return f"two approvals from node {vote['node']}"
            approvals.add(vote["node"])
    if len(approvals) < required:
        return f"{len(approvals)} valid approvals; {required} required"
    return None


def _vote_problem(vote: dict, *, proposal_id: str, digest: str, keys: dict) -> str | None:
    if set(vote) != {"node", "verdict", "key_id", "signature", "signed"}:
        return "a vote with unexpected fields"
    signed = vote["signed"]
    expected = {
        "type": VOTE_TYPE,
        "proposal_id": proposal_id,
        "decision_digest": digest,
        "node": vote["node"],
        "verdict": vote["verdict"],
        "key_id": vote["key_id"],
    }
    if any(signed.get(field) != value for field, value in expected.items()):
        return f"the {vote['node']} vote signs something other than this decision"
    if vote["node"] not in NODES or vote["verdict"] not in ("approve", "reject"):
        return "a vote from an unknown node or with an unknown verdict"
    key = keys.get(vote["key_id"])
    if key is None or key["node"] != vote["node"]:
        return f"key {vote['key_id']} is not a published key of node {vote['node']}"
    message = sha256_hex(signed).encode("ascii")
    try:
        public_key, signature = _b64(key["public_key"]), _b64(vote["signature"])
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, binascii.Error, ValueError):
        return f"the {vote['node']} signature does not verify"
    return None


def _b64(text: str) -> bytes:
    """Strict base64: the one spelling of these bytes (unused low bits of the last character
    could otherwise be changed without changing the bytes)."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw
