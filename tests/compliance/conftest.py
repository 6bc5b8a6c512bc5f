"""A recorded history with known counts, and the command run as the shell runs it."""

import hashlib
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.core.management import get_commands, load_command_class
from django.db import connections

from governance.models import Proposal
from governance.services.controls import breaker_reset, breaker_trip, trading_enable, trading_halt
from ledger.services import audit_chain_extend
from tests.builders import approved_proposal, order_with_fill, post_proposal, proposal_body, staff_member

TODAY = datetime.now(dt_timezone.utc).date().isoformat()
TOMORROW = (datetime.now(dt_timezone.utc).date() + timedelta(days=1)).isoformat()
LAST_WEEK = (datetime.now(dt_timezone.utc).date() - timedelta(days=7)).isoformat()


@pytest.fixture
def history(api):
    """Through the real pipeline (sandbox venue): one proposal blocked while trading is halted,
    one approved and filled, one cut down (modify) and filled; plus a live order with its fill
    written as the execution layer writes it, and a breaker tripped and reset. Known counts:
    4 proposals (1 blocked), 6 votes, 3 orders, 3 fills (1 live, 2 sandbox)."""
    trading_halt(actor="operator:alice", reason="maintenance window")
    blocked = post_proposal(api).json()["id"]
    trading_enable(actor="operator:bob", reason="window over")
    approved = post_proposal(api, body=proposal_body(quantity="0.0020")).json()["id"]
    modified = post_proposal(api, body=proposal_body(quantity="1000")).json()["id"]
    live = approved_proposal(agent=api.agent, quantity="0.0030")
    order_with_fill(proposal=live, live=True, trade_id="weex-trade-1")
    breaker_trip(name="venue_errors", actor="operator:carol", reason="venue flapping")
    breaker_reset(name="venue_errors", actor="operator:carol", reason="venue steady")
    while audit_chain_extend():
        pass
    assert Proposal.objects.count() == 4
    return {"blocked": blocked, "approved": approved, "modified": modified, "live": str(live.id)}


@pytest.fixture
def jobs_in_process(settings, tmp_path):
    """Compliance jobs run as the Celery task, eagerly, in the test's own transaction (the
    embedded default's thread would not see the test's uncommitted rows); files under tmp_path."""
    settings.EMBEDDED_TASKS = False
    settings.CHRONOSX_EXPORT_DIR = tmp_path / "exports"
    return settings.CHRONOSX_EXPORT_DIR


@pytest.fixture
def compliance(seeded):
    return staff_member("compliance", "cora")


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run a command as `manage.py …` runs it (Django's error printing and exit status), in this
    process so that it sees the test's database. Returns (exit status, stdout, stderr)."""
    monkeypatch.setattr(connections, "close_all", lambda: None)  # run_from_argv's, at its end

    def run(*argv):
        command = load_command_class(get_commands()[argv[0]], argv[0])
        try:
            command.run_from_argv(["manage.py", *argv])
            status = 0
        except SystemExit as exit:
            status = exit.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
