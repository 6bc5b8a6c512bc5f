"""Proposals: submission, and the proposal lifecycle (one transitions table, one transition function)."""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from chronosx import metrics, pipeline
from chronosx.api import IdempotencyConflict, Overloaded
from chronosx.canonical import canonical_json, sha256_hex
from governance.models import Agent, Proposal, Strategy
from governance.selectors.proposals import proposal_engine_input
from ledger.services import audit_record

S = Proposal.Status

# Every status a proposal may move to, from each status. Final statuses lead nowhere, but one:
#   pending  -> approved (quorum met) | blocked (rules, or quorum impossible) | expired (no quorum in time)
#   approved -> the order's progress at the venue, or expired (an approval too old to send)
#   blocked  -> pending, only when a force-execute is approved (governance.services.forcing):
#               the nodes then vote on the decision and its force record
PROPOSAL_TRANSITIONS = {
    S.PENDING: {S.APPROVED, S.BLOCKED, S.EXPIRED},
    S.BLOCKED: {S.PENDING},
    S.APPROVED: {S.ROUTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED, S.EXPIRED},
    S.ROUTED: {S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED},
    S.PARTIALLY_FILLED: {S.FILLED, S.CANCELLED},
}


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def proposal_transition(*, proposal_id, to: str, actor: str, reason: str, only_from=None, extra=None) -> bool:
    """Move a proposal to `to` if the transitions table allows it from its status now
    (and, with `only_from`, only from those). The row is locked, so two workers never
    both make a transition; the audit event is written in the same transaction.
    Returns whether the proposal moved."""
    allowed = {status for status, targets in PROPOSAL_TRANSITIONS.items() if to in targets}
    if only_from is not None:
        allowed &= set(only_from)
    row = Proposal.objects.select_for_update().filter(id=proposal_id).values_list("status", "received_at").first()
    current, received_at = row or (None, None)
    if current not in allowed:
        return False
    now = timezone.now()
    Proposal.objects.filter(id=proposal_id, status=current).update(status=to, status_changed_at=now)
    metrics.proposal_status(status=to, received_at=received_at, at=now)
    audit_record(
        kind="proposal.status",
        actor=actor,
        proposal_id=proposal_id,
        payload={"from": current, "to": to, "reason": reason, **(extra or {})},
    )
    return True


def request_hash(body: dict) -> str:
    return sha256_hex(canonical_json(body))


def _pipeline_full() -> bool:
    """Whether CHRONOSX_MAX_PENDING_PROPOSALS proposals are in the pipeline short of the venue:
    awaiting a decision or votes (pending), or approved and awaiting the router. Counting the
    router's queue too keeps the whole way to the venue bounded, not only the decision. Reads
    at most that many entries of the (status, status_changed_at) index."""
    limit = settings.CHRONOSX_MAX_PENDING_PROPOSALS
    if limit <= 0:
        return False
    in_pipeline = Proposal.objects.filter(status__in=(Proposal.Status.PENDING, Proposal.Status.APPROVED))
    return in_pipeline.values("id")[limit - 1 : limit].exists()


def proposal_submit(
    *, agent: Agent, strategy: Strategy, data: dict, idempotency_key: str, body_hash: str, received_at
) -> tuple[Proposal, bool]:
    """Store a proposal and enqueue its evaluation after commit.

    Returns (proposal, created). The same key with the same body returns the first
    proposal; with another body it raises IdempotencyConflict. The uniqueness is the
    database's, so concurrent duplicates cannot both insert. With the pipeline full a new
    opening proposal is refused (Overloaded); a retry of a stored one is still answered, and a
    close is always taken: a full pipeline must not trap a position.
    """
    if data.get("intent") != Proposal.Intent.CLOSE and _pipeline_full():
        existing = _stored_under_key(agent=agent, idempotency_key=idempotency_key, body_hash=body_hash)
        if existing is None:
            raise Overloaded()
        return existing, False
    try:
        with transaction.atomic():
            proposal = Proposal.objects.create(
                agent=agent,
                strategy=strategy,
                idempotency_key=idempotency_key,
                request_hash=body_hash,
                received_at=received_at,
                status_changed_at=received_at,
                **data,
            )
            audit_record(
                kind="proposal.received",
                actor=f"agent:{agent.name}",
                proposal_id=proposal.id,
                payload={"proposal": proposal_engine_input(proposal=proposal), "idempotency_key": idempotency_key},
            )
            # With the broker down the proposal is still stored and answered; the
            # sweeper enqueues it once the broker is back.
            pipeline.after_commit(pipeline.EVALUATE, proposal.id)
            metrics.proposal_received()
    except IntegrityError:
        existing = _stored_under_key(agent=agent, idempotency_key=idempotency_key, body_hash=body_hash)
        if existing is None:
            raise
        return existing, False
    return proposal, True


def _stored_under_key(*, agent: Agent, idempotency_key: str, body_hash: str) -> Proposal | None:
    """The agent's proposal already stored under this key, if any: the same request again.
    Under the same key with another body it raises IdempotencyConflict."""
    existing = Proposal.objects.filter(agent=agent, idempotency_key=idempotency_key).first()
    if existing is not None and existing.request_hash != body_hash:
        raise IdempotencyConflict()
    return existing


def proposals_claim_for_sweep(*, proposal_ids, now, every_seconds: float) -> list:
    """Of these stuck proposals, the ones a sweeper may re-enqueue now: each at most once
    per `every_seconds`. A slow worker's backlog is then not multiplied by the sweeper
    (a conditional update per proposal, so two sweepers never both claim one)."""
    due_before = now - timedelta(seconds=every_seconds)
    claimed = []
    for proposal_id in proposal_ids:
        due = Proposal.objects.filter(id=proposal_id).filter(Q(swept_at__isnull=True) | Q(swept_at__lt=due_before))
        if due.update(swept_at=now):
            claimed.append(proposal_id)
    return claimed
