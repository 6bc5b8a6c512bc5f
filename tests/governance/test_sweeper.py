"""The sweeper rescues stuck proposals without multiplying a slow worker's backlog."""

from datetime import timedelta

from django.utils import timezone

from governance import services
from governance.models import Proposal
from tests.conftest import post_proposal


def test_a_stuck_proposal_is_re_enqueued_once_per_window_not_on_every_pass(api, settings, monkeypatch):
    settings.CHRONOSX_SWEEP_AFTER_SECONDS = 10
    enqueued = []
    monkeypatch.setattr(services, "_enqueue_evaluation", enqueued.append)
    proposal_id = post_proposal(api).json()["id"]  # its evaluation is "lost": recorded, never run
    assert Proposal.objects.get(id=proposal_id).status == "pending"

    now = timezone.now() + timedelta(seconds=30)
    assert services.proposals_sweep(now=now)["reevaluated"] == 1
    # Passes within the same window leave the backlog alone...
    assert services.proposals_sweep(now=now + timedelta(seconds=5))["reevaluated"] == 0
    # ...and a later one tries again, in case that message was lost too.
    assert services.proposals_sweep(now=now + timedelta(seconds=11))["reevaluated"] == 1
    assert [str(p) for p in enqueued] == [proposal_id] * 3  # the POST's own send, then two sweeps
