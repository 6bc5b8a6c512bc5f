"""Management commands of CONTRACT.md §2 that issue 2 owns: seed_demo, create_agent, trading."""

import io
import json
import re

import pytest
from django.core.management import CommandError, call_command

from governance import engine
from governance.models import (
    Agent,
    CircuitBreaker,
    Instrument,
    NodeKey,
    Ruleset,
    Strategy,
    TradingState,
)
from ledger.models import AuditEvent
from tests.builders import client_for, post_proposal, proposal_body


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- trading -------------------------------------------------------------------------


def test_trading_enable_switches_trading_on_prints_it_and_audits_who_and_why(seeded):
    output = run("trading", "enable", "--reason", "market open", "--user", "alice")
    assert "enabled" in output and "alice" in output and "market open" in output
    state = TradingState.objects.get(pk=1)
    assert state.enabled and state.reason == "market open" and "alice" in state.changed_by
    event = AuditEvent.objects.filter(kind="trading.enabled").latest("id")
    assert "alice" in event.actor
    assert json.loads(event.payload)["reason"] == "market open"


def test_trading_halt_switches_trading_off_and_audits(trading_enabled):
    output = run("trading", "halt", "--reason", "incident 42", "--user", "bob")
    assert "halted" in output
    assert not TradingState.objects.get(pk=1).enabled
    event = AuditEvent.objects.filter(kind="trading.halted").latest("id")
    assert "bob" in event.actor and json.loads(event.payload)["reason"] == "incident 42"


def test_trading_enable_lets_a_sound_proposal_through(api):
    assert post_proposal(api).json()["decision"]["outcome"] == "block"
    run("trading", "enable", "--reason", "go")
    assert post_proposal(api).json()["decision"]["outcome"] == "approve"


@pytest.mark.parametrize("args", [("trading", "enable"), ("trading", "pause", "--reason", "x"), ("trading",)])
def test_trading_without_a_reason_or_with_a_bad_action_fails_and_changes_nothing(seeded, args):
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError):
        run(*args)
    assert AuditEvent.objects.count() == events
    assert not TradingState.objects.get(pk=1).enabled


# --- create_agent --------------------------------------------------------------------


def test_create_agent_prints_the_token_alone_on_the_last_line_and_it_authenticates(seeded):
    output = run("create_agent", "bot-1", "--strategy", "demo", "--strategy", "fresh")
    token = output.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(r"\S+", token) and len(token) >= 20
    assert token not in output.rstrip("\n").splitlines()[:-1]

    agent = Agent.objects.get(name="bot-1")
    assert set(agent.strategies.values_list("slug", flat=True)) == {"demo", "fresh"}
    assert agent.token_hash != token  # only a hash is stored
    assert Strategy.objects.filter(slug="fresh").exists()

    client = client_for(token)
    assert client.get("/api/v1/proposals/").status_code == 200
    assert post_proposal(client, proposal_body(strategy="fresh")).status_code == 202
    assert post_proposal(client, proposal_body(strategy="other-one")).status_code == 403


def test_create_agent_refuses_a_name_that_exists(seeded):
    run("create_agent", "bot-2", "--strategy", "demo")
    with pytest.raises(CommandError):
        run("create_agent", "bot-2", "--strategy", "demo")
    assert Agent.objects.filter(name="bot-2").count() == 1


def test_create_agent_needs_a_strategy(seeded):
    with pytest.raises(CommandError):
        run("create_agent", "bot-3")
    assert not Agent.objects.filter(name="bot-3").exists()


# --- seed_demo -----------------------------------------------------------------------


def snapshot():
    return {
        "instruments": sorted(Instrument.objects.values_list("symbol", "min_quantity", "quantity_step")),
        "strategies": sorted(Strategy.objects.values_list("slug", flat=True)),
        "rulesets": sorted(Ruleset.objects.values_list("version", "status")),
        "node_keys": sorted(NodeKey.objects.values_list("node", "key_id")),
        "breakers": sorted(CircuitBreaker.objects.values_list("name", flat=True)),
    }


def test_seed_demo_is_idempotent(seeded, node_key_dir):
    before = snapshot()
    key_files = {p.name: p.read_bytes() for p in node_key_dir.iterdir()}
    run("seed_demo")
    run("seed_demo")
    assert snapshot() == before
    assert {p.name: p.read_bytes() for p in node_key_dir.iterdir()} == key_files


def test_seed_demo_creates_the_contract_instruments_strategy_ruleset_and_keys(seeded, node_key_dir):
    btc, eth = Instrument.objects.get(symbol="BTCUSDT"), Instrument.objects.get(symbol="ETHUSDT")
    assert (str(btc.min_quantity), str(btc.quantity_step)) == ("0.0001", "0.0001")
    assert (str(eth.min_quantity), str(eth.quantity_step)) == ("0.001", "0.001")
    assert Strategy.objects.filter(slug="demo").exists()
    assert Ruleset.objects.filter(status=Ruleset.Status.PUBLISHED).exists()
    assert set(NodeKey.objects.filter(active=True).values_list("node", flat=True)) == {"risk", "portfolio", "execution"}
    assert any(node_key_dir.iterdir())
    assert not TradingState.objects.get(pk=1).enabled


def test_seed_demo_ruleset_allows_at_least_60_proposals_a_minute(seeded):
    from governance.selectors.controls import ruleset_current

    rules = ruleset_current().params
    assert rules["max_proposals_per_minute"] >= 60
    # The 60th proposal of the minute (59 before it) passes the rate check.
    context = {
        "trading_enabled": True, "trading_reason": "", "tripped_breakers": [],
        "instrument": {"enabled": True, "min_quantity": "0.0001", "quantity_step": "0.0001"},
        "position_quantity": "0", "closable_quantity": "0", "asset_exposure": "0", "strategy_exposure": "0",
        "gross_exposure": "0", "open_positions": 0, "has_open_position": False, "proposals_last_minute": 59,
    }
    proposal = {
        "id": "x", "strategy": "demo", "symbol": "BTCUSDT", "side": "buy", "quantity": "0.001",
        "order_type": "limit", "limit_price": "65000", "reference_price": "65000", "expected_slippage_bps": "1",
        "confidence": "0.95", "signal_time": "2026-11-25T12:00:00+00:00", "received_at": "2026-11-25T12:00:00+00:00",
        "intent": "open",
    }
    assert engine.evaluate(proposal=proposal, context=context, rules=rules)["outcome"] == "approve"


def test_seed_demo_ruleset_approves_the_contract_sound_proposal_and_cuts_down_1000_btc(api):
    run("trading", "enable", "--reason", "demo")
    sound = post_proposal(api, proposal_body(quantity="0.001", limit_price="65000", reference_price="65000"))
    assert sound.json()["decision"]["outcome"] == "approve"
    huge = post_proposal(api, proposal_body(quantity="1000")).json()["decision"]
    assert huge["outcome"] == "modify"
    assert post_proposal(api, proposal_body(quantity=huge["approved_quantity"])).json()["decision"]["outcome"] == "approve"
