"""MPC quorum stage. Placeholder until the signed-vote nodes exist: a non-block
decision goes straight to `approved` and routing is enqueued after commit."""

from django.db import transaction


def quorum_open(*, proposal, decision):
    from governance.services import proposal_transition

    if proposal_transition(proposal_id=proposal.id, to="approved", actor="governance", reason=f"decision {decision.outcome}"):
        transaction.on_commit(lambda: enqueue_routing(proposal.id))


def quorum_sweep(*, now) -> dict:
    return {}


def enqueue_routing(proposal_id):
    from exchange.tasks import order_route_task

    order_route_task.delay(str(proposal_id))


def quorum_summary(*, proposal):
    return None


def quorum_certificate_verify(*, proposal) -> tuple[bool, str]:
    """Placeholder until signed votes exist: refuse everything not plainly approved."""
    if proposal.status != "approved":
        return False, f"proposal is {proposal.status}, not approved"
    return False, "no quorum certificate: MPC quorum not implemented yet"
