"""Reading force-execute: a proposal's force record, whether it verifies, what it shows.

A force record is an approved ForceRequest. What every node (and the router, through the
certificate) checks before trusting one is force_record_problem; what the API, the admin,
the dashboard and the exports show of it is force_summary.
"""

from decimal import Decimal

from governance import engine
from governance.digests import decision_row_digest, force_row_digest
from governance.models import Decision, ForceRequest, Proposal
from governance.roles import APPROVE_FORCE, REQUEST_FORCE, staff_user, user_may
from governance.selectors.controls import trading_state

OPEN = (ForceRequest.Status.REQUESTED, ForceRequest.Status.APPROVED)


def force_record(*, proposal_id) -> ForceRequest | None:
    """The proposal's approved force request (its force record), if it has one."""
    return ForceRequest.objects.filter(proposal_id=proposal_id, status=ForceRequest.Status.APPROVED).first()


def force_open(*, proposal_id) -> ForceRequest | None:
    """The proposal's request that is waiting for approval or approved, if any."""
    return ForceRequest.objects.filter(proposal_id=proposal_id, status__in=OPEN).first()


def force_requests_due(*, now) -> list[int]:
    """Requests still waiting for approval whose ten minutes are up at `now`."""
    return list(
        ForceRequest.objects.filter(status=ForceRequest.Status.REQUESTED, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("id", flat=True)[:500]
    )


def force_summary(*, proposal) -> dict:
    """{"forced": false} or {"forced": true, "force": {requested_by, approved_by, reason,
    approved_at}}: the proposal's force record as the API, admin, dashboard and exports show it.
    Uses a prefetched `force_requests` when there is one."""
    record = next((f for f in proposal.force_requests.all() if f.status == ForceRequest.Status.APPROVED), None)
    if record is None:
        return {"forced": False, "force": None}
    return {
        "forced": True,
        "force": {
            "requested_by": record.requested_by,
            "approved_by": record.approved_by,
            "reason": record.reason,
            "approved_at": record.approved_at,
        },
    }


def force_refusals_now(*, proposal: Proposal, decision: Decision, context: dict) -> list[str]:
    """Why no force may let this blocked decision go on: each failed check that is hard under
    the decision's rules, and each control that fails with `context` (the controls as they are
    now: trading state, breakers, the instrument). Empty: it may be forced."""
    rules = decision.inputs["rules"]
    stored = engine.force_refusals(checks=decision.checks, rules=rules)
    failed = {refusal.split(":", 1)[0] for refusal in stored}
    checks = engine.evaluate(proposal=decision.inputs["proposal"], context=context, rules=rules)["checks"]
    now = [
        f"{c['rule']} (now): {c['detail']}"
        for c in checks
        if not c["passed"] and c["rule"] in engine.NEVER_FORCED and c["rule"] not in failed
    ]
    trading = force_trading_refusal()
    if trading and "trading_enabled" not in failed and not any(r.startswith("trading_enabled") for r in now):
        now.insert(0, f"trading_enabled (now): {trading}")
    return stored + now


def force_trading_refusal() -> str | None:
    """Why no force may go on with trading as it is now (None: trading is fully enabled). A force
    needs trading enabled outright: not halted, and not reduce-only either, even for a close
    (the one place that decides it, whatever other states the switch gets)."""
    state = trading_state()
    if state.enabled:
        return None
    return f"trading is not enabled: {state.reason or 'no reason given'}"


def force_overrides(decision: Decision) -> list[str]:
    """The rules a force of this decision overrides: its failed checks, in table order."""
    return [c["rule"] for c in decision.checks if not c["passed"]]


def force_record_problem(*, proposal: Proposal, decision: Decision, force: ForceRequest, roles: bool = True) -> str | None:
    """What a node checks of a force record before it signs over it (None: it verifies).

    Two distinct people: a requester who may request a force and a different approver who may
    approve one (with `roles`, checked against their roles now); approved before it expired;
    made on this decision as stored, a `block`, and overriding exactly its failed checks, none
    of them hard under the decision's rules; the record's digest is its own."""
    if force.proposal_id != proposal.id or force.status != ForceRequest.Status.APPROVED:
        return "no approved force request for this proposal"
    if not force.requested_by or not force.approved_by or force.approved_at is None:
        return "the force record lacks its request or its approval"
    if force.requested_by == force.approved_by:
        return f"requested and approved by the same person ({force.requested_by})"
    if engine.force_expired(expires_at=force.expires_at.isoformat(), at=force.approved_at.isoformat()):
        return f"approved at {force.approved_at.isoformat()}, after the request expired at {force.expires_at.isoformat()}"
    if decision.outcome != Decision.Outcome.BLOCK:
        return f"the decision is {decision.outcome}, not a block"
    if force.decision_digest != decision_row_digest(decision):
        return "the force record names a decision other than the stored one"
    if force.overrides != force_overrides(decision):
        return f"the force record overrides {force.overrides}, the decision failed {force_overrides(decision)}"
    hard = engine.force_refusals(checks=decision.checks, rules=decision.inputs.get("rules", {}))
    if hard:
        return "a force never overrides " + "; ".join(hard)
    if force_row_digest(force) != force.digest:
        return "force record digest does not match the stored record"
    if roles:
        requester, approver = staff_user(force.requested_by), staff_user(force.approved_by)
        if requester is None or not user_may(requester, REQUEST_FORCE):
            return f"{force.requested_by} may not request a force"
        if approver is None or not user_may(approver, APPROVE_FORCE):
            return f"{force.approved_by} may not approve a force"
    return None


def order_quantity(*, proposal: Proposal) -> Decimal:
    """The quantity an approved proposal's order is for: what governance approved, or for a
    forced proposal (blocked, so nothing approved) the quantity proposed."""
    decision = proposal.decision
    if decision.outcome == Decision.Outcome.BLOCK:
        return proposal.quantity
    return decision.approved_quantity

