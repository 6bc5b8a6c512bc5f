"""Dashboard fixtures: proposals through the real API pipeline, orders and fills written
the way the execution layer writes them (tests.builders.order_with_fill)."""

import pytest

from governance.models import Proposal
from governance.services.controls import trading_enable, trading_halt
from tests.builders import order_with_fill, post_proposal, proposal_body


@pytest.fixture
def trace_data(api):
    """A proposal blocked because trading is halted, then an approved one with a sandbox fill."""
    trading_halt(actor="ops-alice", reason="maintenance window")
    blocked_id = post_proposal(api).json()["id"]
    trading_enable(actor="ops-bob", reason="window over")
    approved_id = post_proposal(api, body=proposal_body(quantity="0.0020")).json()["id"]
    approved = Proposal.objects.select_related("instrument").get(id=approved_id)
    order = order_with_fill(proposal=approved, live=False, trade_id="sbx-trade-1")
    return {"blocked_id": blocked_id, "approved_id": approved_id, "order": order}
