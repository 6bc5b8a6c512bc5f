"""Trading states and pauses end to end: the `trading` command (each role × each action), what
each state does to a posted proposal's decision, the stored context and its replay, and health."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from governance.models import Decision, Instrument, Strategy, TradingState
from governance.replay import decision_replay
from ledger.models import AuditEvent
from tests.builders import post_proposal, proposal_body, staff_member
from tests.governance.test_roles import run_cli

ROLES = ["viewer", "operator", "risk_officer", "compliance"]
MAY_CONTROL = {"operator", "risk_officer"}
ACTIONS = {
    "enable": ["enable"],
    "halt": ["halt"],
    "reduce-only": ["reduce-only"],
    "pause-strategy": ["pause", "--strategy", "demo"],
    "pause-symbol": ["pause", "--symbol", "BTCUSDT"],
    "resume-strategy": ["resume", "--strategy", "demo"],
    "resume-symbol": ["resume", "--symbol", "BTCUSDT"],
    "kill": ["kill"],
}


def trading(*args):
    out = io.StringIO()
    call_command("trading", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def controls():
    state = TradingState.objects.get(pk=1)
    pauses = sorted(
        [(s.slug, s.paused, s.pause_reason) for s in Strategy.objects.all()]
        + [(i.symbol, i.paused, i.pause_reason) for i in Instrument.objects.all()]
    )
    return (state.state, state.reason, state.changed_by), pauses


def decision_of(response) -> dict:
    return response.json()["decision"]


def detail(decision, rule):
    return next(c for c in decision["checks"] if c["rule"] == rule)


def failed(decision):
    return [c["rule"] for c in decision["checks"] if not c["passed"]]


# --- the command: each role × each action -------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_the_trading_command_runs_with_the_named_staff_users_role(seeded, role, action, capsys, monkeypatch):
    staff_member(role, "pat")
    if action.startswith("resume"):
        trading("pause", *ACTIONS[action][1:], "--reason", "set up", "--user", "root")
    before, count = controls(), AuditEvent.objects.count()

    status, out, err = run_cli(["trading", *ACTIONS[action], "--reason", "desk call 9", "--user", "pat"], capsys, monkeypatch)

    if role not in MAY_CONTROL:
        assert status == 1 and out == ""
        assert err.startswith("permission denied: pat (" + role + ") may not ")
        assert controls() == before and AuditEvent.objects.count() == count
        return
    assert status == 0, err
    assert controls() != before or action == "halt"  # seeded trading is halted already: a new reason and user
    new = AuditEvent.objects.order_by("id")[count:]
    operator_events = [e for e in new if e.kind.startswith(("trading.", "strategy.", "instrument."))]
    assert len(operator_events) == 1
    [event] = operator_events
    assert event.actor == "operator:pat" and json.loads(event.payload)["reason"] == "desk call 9"


def test_the_trading_command_without_a_staff_user_runs_with_full_rights_recording_the_name(seeded):
    assert trading("reduce-only", "--reason", "unwind", "--user", "night-shift") == "trading reduce_only by night-shift: unwind\n"
    state = TradingState.objects.get(pk=1)
    assert (state.state, state.reason, state.changed_by) == ("reduce_only", "unwind", "operator:night-shift")
    event = AuditEvent.objects.filter(kind="trading.reduce_only").get()
    assert json.loads(event.payload) == {"state": "reduce_only", "enabled": False, "previous": "halted", "reason": "unwind"}


@pytest.mark.parametrize("args", [
    ["enable", "--reason", "  "],
    ["pause", "--strategy", "demo", "--reason", ""],
    ["pause", "--strategy", "nope", "--reason", "x"],
    ["pause", "--symbol", "DOGEUSDT", "--reason", "x"],
    ["pause", "--strategy", "demo", "--symbol", "BTCUSDT", "--reason", "x"],
    ["resume", "--reason", "x"],
    ["kill"],
])
def test_a_trading_command_without_a_reason_or_a_known_target_fails_and_changes_nothing(seeded, args):
    before, count = controls(), AuditEvent.objects.count()
    with pytest.raises(CommandError):
        trading(*args)
    assert controls() == before and AuditEvent.objects.count() == count


def test_pause_and_resume_record_who_and_why_and_print_it(seeded):
    assert trading("pause", "--symbol", "ETHUSDT", "--reason", "delisting", "--user", "ann") == (
        "instrument ETHUSDT paused by ann: delisting\n"
    )
    eth = Instrument.objects.get(symbol="ETHUSDT")
    assert (eth.paused, eth.pause_reason, eth.paused_by) == (True, "delisting", "operator:ann")
    assert trading("resume", "--symbol", "ETHUSDT", "--reason", "relisted", "--user", "bob") == (
        "instrument ETHUSDT resumed by bob: relisted\n"
    )
    eth.refresh_from_db()
    assert (eth.paused, eth.pause_reason, eth.paused_by) == (False, "", "operator:bob")
    kinds = list(AuditEvent.objects.filter(kind__startswith="instrument.").values_list("kind", "actor"))
    assert kinds == [("instrument.paused", "operator:ann"), ("instrument.resumed", "operator:bob")]


# --- what each state and pause does to a decision -------------------------------------------


def test_halted_blocks_with_the_reason_given(api):
    trading("halt", "--reason", "venue maintenance")
    decision = decision_of(post_proposal(api))
    assert failed(decision) == ["trading_enabled"]
    assert detail(decision, "trading_enabled")["detail"] == "trading is halted: venue maintenance"


def test_reduce_only_blocks_an_opening_order_and_lets_a_close_pass_its_check(api):
    trading("reduce-only", "--reason", "unwinding")
    opening = decision_of(post_proposal(api))
    assert failed(opening) == ["trading_enabled"] and opening["outcome"] == "block"
    assert detail(opening, "trading_enabled")["detail"] == "trading is reduce-only: only closes pass"

    close = decision_of(post_proposal(api, proposal_body(side="sell", intent="close")))
    assert detail(close, "trading_enabled") == {
        "rule": "trading_enabled", "passed": True, "detail": "trading is reduce-only; a close passes",
    }
    # ALPHA (the demo ruleset) still refuses exits, and there is nothing to close: those checks, not the state.
    assert "trading_enabled" not in failed(close) and "exits_enabled" in failed(close)


def test_a_paused_strategy_is_blocked_until_resumed(api):
    trading("enable", "--reason", "open")
    trading("pause", "--strategy", "demo", "--reason", "drawdown review")
    decision = decision_of(post_proposal(api))
    assert failed(decision) == ["trading_enabled"]
    assert detail(decision, "trading_enabled")["detail"] == "strategy demo is paused: drawdown review"

    trading("resume", "--strategy", "demo", "--reason", "review done")
    assert decision_of(post_proposal(api))["outcome"] == "approve"


def test_a_paused_instrument_fails_instrument_enabled_until_resumed(api):
    trading("enable", "--reason", "open")
    trading("pause", "--symbol", "BTCUSDT", "--reason", "listing review")
    decision = decision_of(post_proposal(api))
    assert failed(decision) == ["instrument_enabled"]
    assert detail(decision, "instrument_enabled")["detail"] == "BTCUSDT is paused: listing review"
    assert decision_of(post_proposal(api, proposal_body(symbol="ETHUSDT", quantity="0.010", limit_price="3500",
                                                        reference_price="3500")))["outcome"] != "block"

    trading("resume", "--symbol", "BTCUSDT", "--reason", "done")
    assert decision_of(post_proposal(api))["outcome"] == "approve"


def test_the_state_and_pauses_are_stored_with_the_decision_and_replay_identically(api):
    trading("reduce-only", "--reason", "unwinding")
    trading("pause", "--strategy", "demo", "--reason", "frozen")
    trading("pause", "--symbol", "BTCUSDT", "--reason", "review")
    proposal_id = post_proposal(api).json()["id"]
    # The controls change afterwards: the replay must use what was stored, not what is now.
    trading("enable", "--reason", "all clear")
    trading("resume", "--strategy", "demo", "--reason", "thawed")

    decision = Decision.objects.get(proposal_id=proposal_id)
    context = decision.inputs["context"]
    assert (context["trading_state"], context["trading_reason"], context["trading_enabled"]) == ("reduce_only", "unwinding", False)
    assert (context["strategy_paused"], context["instrument_paused"]) == ("frozen", "review")
    assert decision_replay(decision=decision) == []
    out = io.StringIO()
    call_command("replay_decision", proposal_id, stdout=out)
    assert out.getvalue().strip() == "identical"


def test_health_reports_the_trading_state(seeded, client):
    for action, state, enabled in (("reduce-only", "reduce_only", False), ("enable", "enabled", True), ("halt", "halted", False)):
        trading(action, "--reason", f"now {state}")
        body = client.get("/api/v1/health/").json()
        assert body["trading"] == {"enabled": enabled, "reason": f"now {state}", "state": state}
