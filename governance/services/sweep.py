"""The governance sweeper: whatever a lost message or a killed worker left behind is
picked up again. (The exchange has its own: exchange.services.settling.)"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from chronosx import pipeline
from governance.models import Proposal
from governance.selectors.health import HEARTBEAT_FRESH_SECONDS
from governance.services.alerts import nodes_down_alert
from governance.services.forcing import force_requests_expire
from governance.services.proposals import proposals_claim_for_sweep
from governance.services.quorum import quorum_sweep


def proposals_sweep(*, now=None) -> dict:
    """Re-enqueue evaluations nobody finished; expire or re-ask votes (quorum_sweep); expire
    force requests nobody approved in time; alert once for each MPC node that stopped beating."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.CHRONOSX_SWEEP_AFTER_SECONDS)
    undecided = proposals_claim_for_sweep(
        proposal_ids=Proposal.objects.filter(
            status=Proposal.Status.PENDING, decision__isnull=True, status_changed_at__lt=stale_before
        )
        .order_by("received_at")
        .values_list("id", flat=True)[:500],
        now=now,
        every_seconds=settings.CHRONOSX_SWEEP_AFTER_SECONDS,
    )
    for proposal_id in undecided:
        pipeline.enqueue(pipeline.EVALUATE, proposal_id)
    return {
        "reevaluated": len(undecided),
        **quorum_sweep(now=now),
        "force_requests_expired": force_requests_expire(now=now),
        "nodes_down": nodes_down_alert(now=now, fresh_seconds=HEARTBEAT_FRESH_SECONDS),
    }
