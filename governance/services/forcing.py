"""Force-execute under two keys: one officer asks for a blocked proposal to be executed anyway,
with a reason; a different risk officer grants it within ten minutes. The proposal then goes
through the node quorum like any order, each node verifying the force record and signing over
it (governance.nodes), or refusing.

A force never overrides the trading switch (halted, or reduce-only), a tripped breaker, ALPHA's
disabled exits, a disabled instrument, or a cap the ruleset marks hard (`force_hard_rules`):
engine.force_refusals on the stored decision, and the controls as they are at the request and
at the approval.

Each audit event names the user through the door they came by (`actor`: `operator:NAME` for the
command, `admin:NAME` for the admin). The request's lifecycle is one transitions table and one transition function (force_transition),
which does the conditional update and writes the audit event in the same transaction.
"""

import unicodedata
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from governance import engine
from governance.digests import decision_row_digest, force_digest
from governance.models import Decision, ForceRequest, Proposal
from governance.roles import APPROVE_FORCE, REQUEST_FORCE, require
from governance.selectors.controls import controls_context_now
from governance.selectors.forcing import force_open, force_overrides, force_refusals_now, force_requests_due
from governance.services.alerts import FORCE_EXECUTED, alert_raise
from governance.services.proposals import proposal_transition
from governance.services.quorum import quorum_open
from ledger.services import audit_record

F = ForceRequest.Status

# A request not approved within this long expires (the sweeper; an approval after it is refused).
FORCE_TTL = timedelta(minutes=10)
# A proposal may be forced only this soon after the rules blocked it: nobody re-checks its prices,
# so a forced order is at most FORCE_WINDOW + FORCE_TTL old when the nodes vote.
FORCE_WINDOW = timedelta(minutes=10)
REASON_MAX = 500

# Every status a force request may move to, from each status. Approved, expired and refused are final.
#   requested -> approved (by a risk officer other than the requester)
#             |  expired  (not approved within FORCE_TTL)
#             |  refused  (declined by a risk officer)
FORCE_TRANSITIONS = {F.REQUESTED: {F.APPROVED, F.EXPIRED, F.REFUSED}}
TRANSITION_EVENTS = {F.APPROVED: "force.approved", F.EXPIRED: "force.expired", F.REFUSED: "force.refused"}


class ForceRefused(Exception):
    """The force may not be requested, granted or declined (the message says why)."""


class ForceFourEyes(ForceRefused):
    """The approver is the requester: another risk officer must approve."""


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def force_transition(*, force_id, to: str, actor: str, reason: str, fields: dict | None = None, extra: dict | None = None) -> bool:
    """Move a force request to `to` if the transitions table allows it from its status now,
    setting `fields` with it; the row is locked and the audit event written in the same
    transaction. Returns whether it moved."""
    allowed = {status for status, targets in FORCE_TRANSITIONS.items() if to in targets}
    row = ForceRequest.objects.select_for_update().filter(id=force_id).values_list("status", "proposal_id").first()
    if row is None or row[0] not in allowed:
        return False
    current, proposal_id = row
    ForceRequest.objects.filter(id=force_id, status=current).update(status=to, **(fields or {}))
    audit_record(
        kind=TRANSITION_EVENTS[to],
        actor=actor,
        proposal_id=proposal_id,
        payload={"force_request": force_id, "from": current, "to": to, "reason": reason, **(extra or {})},
    )
    return True


def _reason_checked(reason: str) -> str:
    if not reason or not reason.strip():
        raise ForceRefused("a reason is required")
    if len(reason) > REASON_MAX:
        raise ForceRefused(f"the reason is longer than {REASON_MAX} characters")
    if any(unicodedata.category(c) == "Cc" for c in reason):
        raise ForceRefused("the reason must not contain control characters")
    return reason


def _blocked_by_rules(proposal_id) -> tuple[Proposal, Decision]:
    """The proposal, locked, and its decision: a proposal the rules blocked, or ForceRefused."""
    proposal = Proposal.objects.select_for_update(of=("self",)).select_related("instrument").filter(id=proposal_id).first()
    if proposal is None:
        raise ForceRefused(f"no proposal {proposal_id}")
    decision = Decision.objects.filter(proposal_id=proposal.id).first()
    if proposal.status != Proposal.Status.BLOCKED or decision is None or decision.outcome != Decision.Outcome.BLOCK:
        raise ForceRefused(f"proposal {proposal.id} is {proposal.status}: only a proposal the rules blocked can be forced")
    return proposal, decision


def _refusals(proposal: Proposal, decision: Decision) -> None:
    context = controls_context_now(context=decision.inputs["context"], proposal=proposal)
    refusals = force_refusals_now(proposal=proposal, decision=decision, context=context)
    if refusals:
        raise ForceRefused("a force never overrides " + "; ".join(refusals))


def _expire_due(*, proposal_id, now) -> None:
    """Expire the proposal's request if its time is up (before anything else is decided of it)."""
    force = force_open(proposal_id=proposal_id)
    if force is not None and force.status == F.REQUESTED and engine.force_expired(
        expires_at=force.expires_at.isoformat(), at=now.isoformat()
    ):
        force_expire(force_id=force.id, now=now)


def force_request(*, proposal_id, user, reason: str, now=None, actor: str | None = None) -> ForceRequest:
    """Ask for a blocked proposal to be executed anyway (an operator or a risk officer). It
    expires unapproved after FORCE_TTL. ForceRefused when the proposal is not one the rules
    blocked, when a check a force never overrides failed (or fails now), or when a request is
    already open."""
    require(user, REQUEST_FORCE, "request force-execute")
    reason = _reason_checked(reason)
    now = now or timezone.now()
    _expire_due(proposal_id=proposal_id, now=now)
    with transaction.atomic():
        proposal, decision = _blocked_by_rules(proposal_id)
        if force_open(proposal_id=proposal.id) is not None:
            raise ForceRefused(f"proposal {proposal.id} already has a force request open")
        if now - decision.decided_at > FORCE_WINDOW:
            raise ForceRefused(
                f"proposal {proposal.id} was blocked at {decision.decided_at.isoformat()}: a force may be requested only "
                f"within {int(FORCE_WINDOW.total_seconds() // 60)} minutes of the decision (its prices are not re-checked)"
            )
        _refusals(proposal, decision)
        force = ForceRequest.objects.create(
            proposal=proposal,
            reason=reason,
            requested_by=user.get_username(),
            requested_at=now,
            expires_at=now + FORCE_TTL,
            decision_digest=decision_row_digest(decision),
        )
        audit_record(
            kind="force.requested",
            actor=actor or f"operator:{user.get_username()}",
            proposal_id=proposal.id,
            payload={
                "force_request": force.id,
                "to": F.REQUESTED,
                "reason": reason,
                "requested_by": force.requested_by,
                "expires_at": force.expires_at.isoformat(),
                "decision_digest": force.decision_digest,
                "overrides": force_overrides(decision),
            },
        )
    return force


def force_approve(*, proposal_id, user, now=None, actor: str | None = None) -> ForceRequest:
    """Grant the proposal's waiting force request (a risk officer other than the requester).
    The record is sealed (its digest), the proposal goes back to `pending`, and the three nodes
    are asked to vote on it after commit. ForceRefused (ForceFourEyes for self-approval) when it
    may not be granted; an expired request is expired on the way (and stays so)."""
    require(user, APPROVE_FORCE, "approve force-execute")
    now = now or timezone.now()
    _expire_due(proposal_id=proposal_id, now=now)
    username = user.get_username()
    with transaction.atomic():
        proposal, decision = _blocked_by_rules(proposal_id)
        force = ForceRequest.objects.select_for_update().filter(proposal_id=proposal.id, status__in=(F.REQUESTED, F.APPROVED)).first()
        if force is None or force.status != F.REQUESTED:
            expired = ForceRequest.objects.filter(proposal_id=proposal.id, status=F.EXPIRED).exists()
            raise ForceRefused(
                f"proposal {proposal.id} has no force request waiting for approval" + (" (it expired)" if expired else "")
            )
        if username == force.requested_by:
            raise ForceFourEyes(f"{username} requested this force; another risk officer must approve it")
        if decision_row_digest(decision) != force.decision_digest:
            raise ForceRefused("the decision changed since the force was requested")
        _refusals(proposal, decision)
        fields = {"approved_by": username, "approved_at": now, "overrides": force_overrides(decision)}
        fields["digest"] = force_digest(
            proposal_id=proposal.id,
            decision_digest=force.decision_digest,
            reason=force.reason,
            requested_by=force.requested_by,
            requested_at=force.requested_at.isoformat(),
            expires_at=force.expires_at.isoformat(),
            approved_by=username,
            approved_at=now.isoformat(),
            overrides=fields["overrides"],
        )
        actor = actor or f"operator:{username}"
        force_transition(
            force_id=force.id,
            to=F.APPROVED,
            actor=actor,
            reason=force.reason,
            fields=fields,
            extra={"requested_by": force.requested_by, "approved_by": username, "approved_at": now.isoformat(),
                   "overrides": fields["overrides"], "digest": fields["digest"]},
        )
        proposal_transition(
            proposal_id=proposal.id,
            to=Proposal.Status.PENDING,
            only_from=(Proposal.Status.BLOCKED,),
            actor=actor,
            reason=f"force-execute requested by {force.requested_by}, approved by {username}: {force.reason}",
            extra={"force_digest": fields["digest"]},
        )
        quorum_open(proposal=proposal, decision=decision, force_digest=fields["digest"])
        alert_raise(
            kind=FORCE_EXECUTED,
            subject=f"Force-execute of proposal {proposal.id} approved by {username} (requested by {force.requested_by})",
            actor=actor,
            details={
                "proposal": str(proposal.id),
                "requested_by": force.requested_by,
                "approved_by": username,
                "reason": force.reason,
                "approved_at": now.isoformat(),
                "overrides": fields["overrides"],
            },
        )
    force.refresh_from_db()
    return force


def force_refuse(*, proposal_id, user, reason: str, actor: str | None = None) -> ForceRequest:
    """Decline the proposal's waiting force request (a risk officer); it stays refused."""
    require(user, APPROVE_FORCE, "refuse force-execute")
    reason = _reason_checked(reason)
    with transaction.atomic():
        force = ForceRequest.objects.select_for_update().filter(proposal_id=proposal_id, status=F.REQUESTED).first()
        if force is None:
            raise ForceRefused(f"proposal {proposal_id} has no force request waiting for approval")
        force_transition(
            force_id=force.id,
            to=F.REFUSED,
            actor=actor or f"operator:{user.get_username()}",
            reason=reason,
            fields={"closed_by": user.get_username(), "closed_at": timezone.now(), "close_reason": reason},
        )
    force.refresh_from_db()
    return force


def force_expire(*, force_id, now) -> bool:
    """Expire one waiting request whose time is up at `now`."""
    force = ForceRequest.objects.filter(id=force_id).first()
    if force is None or not engine.force_expired(expires_at=force.expires_at.isoformat(), at=now.isoformat()):
        return False
    return force_transition(
        force_id=force_id,
        to=F.EXPIRED,
        actor="sweeper",
        reason=f"not approved within {int(FORCE_TTL.total_seconds() // 60)} minutes",
        fields={"closed_by": "sweeper", "closed_at": now, "close_reason": "not approved in time"},
        extra={"expires_at": force.expires_at.isoformat()},
    )


def force_requests_expire(*, now) -> int:
    """The sweeper's part: expire every waiting request whose ten minutes are up at `now`."""
    return sum(force_expire(force_id=force_id, now=now) for force_id in force_requests_due(now=now))
