"""Trading state, pauses and the kill switch from the dashboard and the admin: each role × each
action, allowed, or refused with 403 and nothing changed; the kill switch cancels a resting order."""

import json

import pytest

from exchange.models import Order, SandboxOrder
from exchange.services.sending import order_route
from governance.models import Agent, Instrument, Strategy, TradingState
from governance.services.controls import trading_enable
from ledger.models import AuditEvent
from tests.builders import approved_proposal

ROLES = ["viewer", "operator", "risk_officer", "compliance"]
MAY_CONTROL = {"operator", "risk_officer"}
POSTS = {
    "enable": ("/dashboard/trading/enable/", {}),
    "reduce-only": ("/dashboard/trading/reduce-only/", {}),
    "halt": ("/dashboard/trading/halt/", {}),
    "kill": ("/dashboard/trading/kill/", {}),
    "pause-strategy": ("/dashboard/pauses/pause/", {"target": "strategy:demo"}),
    "pause-instrument": ("/dashboard/pauses/pause/", {"target": "instrument:ETHUSDT"}),
    "resume": ("/dashboard/pauses/resume/", {"target": "strategy:demo"}),
}


def controls():
    state = TradingState.objects.get(pk=1)
    pauses = sorted([(s.slug, s.paused, s.pause_reason) for s in Strategy.objects.all()]
                    + [(i.symbol, i.paused, i.pause_reason) for i in Instrument.objects.all()])
    return (state.state, state.reason, state.changed_by), pauses


@pytest.mark.parametrize("role", ROLES)
def test_the_trading_and_pause_controls_are_offered_only_to_operators_and_risk_officers(login_as, role):
    page = login_as(role).get("/").content.decode()
    for marker in ('id="trading-form"', 'class="trading-kill"', 'id="pause-form"'):
        assert (marker in page) == (role in MAY_CONTROL)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(POSTS))
def test_each_dashboard_control_is_allowed_or_refused_with_403_and_nothing_changed(login_as, role, action):
    client = login_as(role)
    if action == "resume":
        Strategy.objects.filter(slug="demo").update(paused=True, pause_reason="set up")
    url, data = POSTS[action]
    before, count = controls(), AuditEvent.objects.count()

    response = client.post(url, {**data, "reason": "desk call 12"})

    if role not in MAY_CONTROL:
        assert response.status_code == 403
        assert response.content.decode().startswith("permission denied: ")
        assert controls() == before and AuditEvent.objects.count() == count
        return
    assert response.status_code == 200, response.content
    assert controls() != before
    [event] = [e for e in AuditEvent.objects.order_by("id")[count:] if e.kind.startswith(("trading.", "strategy.", "instrument."))]
    assert event.actor == f"dashboard:{role}" and json.loads(event.payload)["reason"] == "desk call 12"


@pytest.mark.parametrize("data", [{"reason": "  "}, {}, {"reason": "x", "target": "strategy:nope"}, {"reason": "x", "target": "demo"}])
def test_a_control_without_a_reason_or_a_known_target_is_refused_with_400(login_as, data):
    client = login_as("operator")
    before, count = controls(), AuditEvent.objects.count()
    assert client.post("/dashboard/pauses/pause/", data).status_code == 400
    if "target" not in data:
        assert client.post("/dashboard/trading/kill/", data).status_code == 400
    assert controls() == before and AuditEvent.objects.count() == count


def test_nothing_changes_on_a_get_of_a_control(login_as):
    client = login_as("operator")
    before, count = controls(), AuditEvent.objects.count()
    for url in ("/dashboard/trading/kill/?reason=x", "/dashboard/trading/enable/?reason=x", "/dashboard/pauses/pause/?target=strategy:demo&reason=x"):
        assert client.get(url).status_code == 405
    assert controls() == before and AuditEvent.objects.count() == count


def test_the_dashboard_shows_the_state_and_what_is_paused(login_as):
    client = login_as("operator")
    client.post("/dashboard/trading/reduce-only/", {"reason": "unwinding"})
    client.post("/dashboard/pauses/pause/", {"target": "instrument:ETHUSDT", "reason": "delisting"})
    panel = client.get("/dashboard/partials/controls/").content.decode()
    assert "REDUCE-ONLY" in panel and "unwinding" in panel
    assert "instrument ETHUSDT" in panel and "delisting" in panel and "dashboard:operator" in panel


def test_the_kill_switch_button_halts_and_the_router_cancels_the_resting_order(login_as, monkeypatch, settings):
    settings.CHRONOSX_VENUE = "sandbox"
    monkeypatch.setattr("exchange.services.sending.quorum_certificate_check", lambda *, proposal: (True, "test"))
    client = login_as("operator")
    trading_enable(actor="test", reason="open")
    agent = Agent.objects.create(name="kill-agent", token_hash="k" * 64, token_prefix="x")
    agent.strategies.add(Strategy.objects.get(slug="demo"))
    proposal = approved_proposal(agent=agent, limit_price="60000")  # below the reference: it rests
    order_route(proposal_id=proposal.id)
    assert Order.objects.get(proposal=proposal).status == "open"

    response = client.post("/dashboard/trading/kill/", {"reason": "fat finger"})

    assert response.status_code == 200 and "kill switch pressed" in response.content.decode()
    assert TradingState.objects.get(pk=1).state == "halted"
    assert Order.objects.get(proposal=proposal).status == "cancelled"
    assert SandboxOrder.objects.get().status == "cancelled"
    proposal.refresh_from_db()
    assert proposal.status == "cancelled"
    killed = AuditEvent.objects.get(kind="trading.killed")
    assert killed.actor == "dashboard:operator" and json.loads(killed.payload)["reason"] == "fat finger"


# --- the admin ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_trading_state_is_changed_in_admin_by_operators_and_risk_officers_only(login_as, role):
    client = login_as(role)
    state = TradingState.objects.get(pk=1)
    before, count = controls(), AuditEvent.objects.count()

    response = client.post(f"/admin/governance/tradingstate/{state.pk}/change/", {"state": "reduce_only", "reason": "unwind"})

    if role not in MAY_CONTROL:
        assert response.status_code == 403
        assert controls() == before and AuditEvent.objects.count() == count
        return
    assert response.status_code == 302
    state.refresh_from_db()
    assert (state.state, state.reason, state.changed_by) == ("reduce_only", "unwind", f"admin:{role}")
    assert AuditEvent.objects.filter(kind="trading.reduce_only", actor=f"admin:{role}").count() == 1


def test_the_trading_state_in_admin_needs_a_reason(login_as):
    client = login_as("operator")
    state = TradingState.objects.get(pk=1)
    before, count = controls(), AuditEvent.objects.count()
    response = client.post(f"/admin/governance/tradingstate/{state.pk}/change/", {"state": "enabled", "reason": " "})
    assert response.status_code == 200 and 'class="errorlist' in response.content.decode()  # the form again, with the error
    assert controls() == before and AuditEvent.objects.count() == count


@pytest.mark.parametrize("role", ROLES)
def test_pausing_a_strategy_in_admin_takes_a_reason_or_is_refused(login_as, role):
    client = login_as(role)
    demo = Strategy.objects.get(slug="demo")
    before, count = controls(), AuditEvent.objects.count()
    page = client.get("/admin/governance/strategy/").content.decode()
    assert ('<option value="pause"' in page) == (role in MAY_CONTROL)

    ask = client.post("/admin/governance/strategy/", {"action": "pause", "index": "0", "_selected_action": [demo.pk]})
    if role not in MAY_CONTROL:
        assert ask.status_code == 403
        assert controls() == before and AuditEvent.objects.count() == count
        return
    assert ask.status_code == 200 and "Reason" in ask.content.decode() and controls() == before
    client.post("/admin/governance/strategy/", {
        "action": "pause", "index": "0", "_selected_action": [demo.pk], "confirm": "yes", "reason": "review",
    })
    demo.refresh_from_db()
    assert (demo.paused, demo.pause_reason, demo.paused_by) == (True, "review", f"admin:{role}")
    assert AuditEvent.objects.filter(kind="strategy.paused", actor=f"admin:{role}").count() == 1


@pytest.mark.parametrize("role", ROLES)
def test_the_kill_switch_in_admin_asks_why_halts_and_cancels_or_is_refused(login_as, role, monkeypatch, settings):
    settings.CHRONOSX_VENUE = "sandbox"
    monkeypatch.setattr("exchange.services.sending.quorum_certificate_check", lambda *, proposal: (True, "test"))
    trading_enable(actor="test", reason="open")
    agent = Agent.objects.create(name="kill-agent", token_hash="k" * 64, token_prefix="x")
    agent.strategies.add(Strategy.objects.get(slug="demo"))
    proposal = approved_proposal(agent=agent, limit_price="60000")
    order_route(proposal_id=proposal.id)
    client = login_as(role)
    state = TradingState.objects.get(pk=1)
    page = client.get("/admin/governance/tradingstate/").content.decode()
    assert ('<option value="kill_switch"' in page) == (role in MAY_CONTROL)
    before, count = controls(), AuditEvent.objects.count()

    ask = client.post("/admin/governance/tradingstate/", {"action": "kill_switch", "index": "0", "_selected_action": [state.pk]})

    if role not in MAY_CONTROL:
        assert ask.status_code == 403
        assert controls() == before and AuditEvent.objects.count() == count
        assert Order.objects.get(proposal=proposal).status == "open"
        return
    assert ask.status_code == 200 and "Kill switch" in ask.content.decode() and controls() == before
    client.post("/admin/governance/tradingstate/", {
        "action": "kill_switch", "index": "0", "_selected_action": [state.pk], "confirm": "yes", "reason": "runaway agent",
    })
    state.refresh_from_db()
    assert (state.state, state.reason, state.changed_by) == ("halted", "runaway agent", f"admin:{role}")
    assert AuditEvent.objects.filter(kind="trading.killed", actor=f"admin:{role}").count() == 1
    assert Order.objects.get(proposal=proposal).status == "cancelled"
