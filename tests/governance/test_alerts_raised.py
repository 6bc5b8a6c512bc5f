"""Which events raise an alert, and with what: the alert handed to delivery after commit is
captured here (delivery itself, to a real receiver, is tests/governance/test_alerts.py)."""

import json

import pytest

from chronosx import pipeline
from exchange.services.breakers import reconciliation_mismatch
from governance.services import forcing
from governance.services.controls import trading_kill
from tests.builders import post_proposal, proposal_body, staff_member


@pytest.fixture
def raised(settings, monkeypatch):
    settings.CHRONOSX_ALERT_EMAILS = ["desk@example.com"]
    settings.CHRONOSX_ALERT_WEBHOOK = ""
    alerts = []
    monkeypatch.setitem(pipeline._registry, pipeline.ALERT, (None, None, lambda text, channel: alerts.append((json.loads(text), channel))))
    return alerts


def test_a_force_execute_approval_is_alerted_with_who_asked_who_approved_and_why(api, trading_enabled, raised):
    olga, rita = staff_member("operator", "olga"), staff_member("risk_officer", "rita")
    proposal_id = post_proposal(api, proposal_body(confidence=0.1)).json()["id"]
    forcing.force_request(proposal_id=proposal_id, user=olga, reason="client hedge")
    assert [a["kind"] for a, _ in raised] == []

    forcing.force_approve(proposal_id=proposal_id, user=rita)

    forced = [a for a, _ in raised if a["kind"] == "force.executed"]
    assert len(forced) == 1 and raised[-1][1] == "email"
    details = forced[0]["details"]
    assert (details["proposal"], details["requested_by"], details["approved_by"], details["reason"]) == (
        proposal_id, "olga", "rita", "client hedge"
    )
    assert "min_confidence" in details["overrides"]


def test_a_reconciliation_mismatch_is_alerted_each_time_and_its_breaker_trip_once(seeded, raised):
    reconciliation_mismatch(venue="sandbox", client_order_id="cx-1", detail="venue filled 0.002, we hold 0.001")
    reconciliation_mismatch(venue="sandbox", client_order_id="cx-2", detail="unknown order at the venue")
    kinds = [a["kind"] for a, _ in raised]
    assert kinds == ["breaker.tripped", "reconciliation.mismatch", "reconciliation.mismatch"]
    assert [a["details"]["client_order_id"] for a, _ in raised[1:]] == ["cx-1", "cx-2"]
    assert raised[0][0]["details"]["breaker"] == "reconciliation_mismatch"


def test_the_kill_switch_is_alerted_as_a_kill(seeded, raised, monkeypatch):
    monkeypatch.setitem(pipeline._registry, pipeline.CANCEL, (None, None, lambda *args: None))
    trading_kill(actor="dashboard:otto", reason="runaway agent")
    [(alert, channel)] = raised
    assert alert["kind"] == "trading.state" and channel == "email"
    assert alert["details"] == {"state": "halted", "previous": "halted", "reason": "runaway agent", "user": "dashboard:otto", "kill": True}
    assert alert["subject"].startswith("Trading killed")


def test_nothing_is_raised_when_no_channel_is_configured(seeded, settings, monkeypatch):
    settings.CHRONOSX_ALERT_EMAILS, settings.CHRONOSX_ALERT_WEBHOOK = [], ""
    calls = []
    monkeypatch.setitem(pipeline._registry, pipeline.ALERT, (None, None, lambda *args: calls.append(args)))
    reconciliation_mismatch(venue="sandbox", client_order_id="cx-1", detail="x")
    assert calls == []
