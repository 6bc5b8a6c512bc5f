"""The sweeper rescues stuck proposals without multiplying a slow worker's backlog."""

from datetime import timedelta

from django.utils import timezone

from chronosx import pipeline
from governance.models import Proposal
from governance.services.sweep import proposals_sweep
from tests.builders import post_proposal


def test_a_stuck_proposal_is_re_enqueued_once_per_window_not_on_every_pass(api, settings, monkeypatch):
    settings.CHRONOSX_SWEEP_AFTER_SECONDS = 10
    enqueued = []
    monkeypatch.setattr(pipeline, "enqueue", lambda stage, proposal_id, queue=None: enqueued.append((stage, proposal_id)))
    proposal_id = post_proposal(api).json()["id"]  # its evaluation is "lost": recorded, never run
    assert Proposal.objects.get(id=proposal_id).status == "pending"

    now = timezone.now() + timedelta(seconds=30)
    assert proposals_sweep(now=now)["reevaluated"] == 1
    # Passes within the same window leave the backlog alone...
    assert proposals_sweep(now=now + timedelta(seconds=5))["reevaluated"] == 0
    # ...and a later one tries again, in case that message was lost too.
    assert proposals_sweep(now=now + timedelta(seconds=11))["reevaluated"] == 1
    # The POST's own send, then two sweeps.
    assert [(stage, str(p)) for stage, p in enqueued] == [(pipeline.EVALUATE, proposal_id)] * 3
