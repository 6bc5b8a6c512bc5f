"""Risk officers work in the admin: every change there is audited, published rules stay frozen."""

import json

import pytest
from django.contrib.auth.models import User

from governance.models import Instrument, Ruleset, TradingState
from ledger.models import AuditEvent


@pytest.fixture
def officer(seeded, client):
    user = User.objects.create_superuser("officer", "officer@example.com", "pw")
    client.force_login(user)
    return client


def last_event(kind):
    return AuditEvent.objects.filter(kind=kind).order_by("-id").first()


def test_an_instrument_edit_is_audited_with_old_and_new_values(officer):
    eth = Instrument.objects.get(symbol="ETHUSDT")
    response = officer.post(
        f"/admin/governance/instrument/{eth.pk}/change/",
        {"symbol": "ETHUSDT", "base_asset": "ETH", "quote_asset": "USDT", "min_quantity": "0.001",
         "quantity_step": "0.001", "price_tick": "0.01"},  # "enabled" unticked
    )
    assert response.status_code == 302
    assert Instrument.objects.get(pk=eth.pk).enabled is False
    event = last_event("instrument.changed")
    assert event.actor == "admin:officer"
    assert json.loads(event.payload)["changed"] == {"enabled": {"from": "True", "to": "False"}}


def test_a_ruleset_draft_is_made_by_a_post_and_a_published_version_is_read_only(officer):
    # The whole lifecycle, four eyes included, is in tests/governance/test_rulesets.py.
    officer.get("/admin/governance/ruleset/add/")
    assert not Ruleset.objects.filter(version=2).exists()
    officer.post("/admin/governance/ruleset/add/", {})  # a copy of the version in force
    draft = Ruleset.objects.get(version=2)
    assert draft.status == "draft" and draft.asset_limits.count() == 2
    assert json.loads(last_event("ruleset.draft_created").payload) == {"version": 2, "from_version": 1}

    page = officer.get(f"/admin/governance/ruleset/{Ruleset.objects.get(version=1).pk}/change/")
    assert b'name="min_confidence"' not in page.content  # read-only once published


def test_halting_trading_in_admin_goes_through_the_audited_service(officer):
    state = TradingState.objects.get(pk=1)
    officer.post(f"/admin/governance/tradingstate/{state.pk}/change/", {"state": "enabled", "reason": "open for the day"})
    assert TradingState.objects.get(pk=1).state == "enabled"
    event = last_event("trading.enabled")
    assert event.actor == "admin:officer" and json.loads(event.payload)["reason"] == "open for the day"


def test_the_compliance_export_lists_decisions_and_is_audited(officer, api):
    from tests.builders import post_proposal

    proposal_id = post_proposal(api).json()["id"]
    response = officer.post(
        "/admin/governance/proposal/", {"action": "export_csv", "_selected_action": [proposal_id]}
    )
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("id,received_at,agent,strategy")
    assert proposal_id in lines[1] and "trading_enabled: trading is halted" in lines[1]
    assert last_event("report.exported") is not None
