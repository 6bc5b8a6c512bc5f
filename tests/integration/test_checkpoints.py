"""On PostgreSQL: the newest audit events deleted by the database superuser, triggers off,
leave a chain that verifies on its own; verify_audit reports them against the nodes'
signed checkpoints, and the nodes keep those checkpoints."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from governance import checkpoints
from ledger.models import AuditEvent
from ledger.services import audit_chain_extend, audit_event_hash, audit_record
from tests.builders import beat_all
from tests.ci_services import service_missing  # fails instead of skipping under CI=true
from tests.integration.test_audit_chain import superuser_sql

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_checkpoint_due(monkeypatch):
    monkeypatch.setattr(checkpoints, "_due", {})


def verify(*args) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def verify_fails() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", stdout=StringIO(), stderr=StringIO())
    return str(failure.value)


@pytest.fixture
def anchored(transactional_db, seeded, node_key_dir):
    """A chain with a few more events, checkpointed by the three embedded nodes."""
    if connection.vendor != "postgresql":
        service_missing("PostgreSQL only: SQLite has no triggers of this kind nor a superuser to bypass them")
    for n in range(6):
        audit_record(kind="test.event", actor="test", payload={"n": n})
    audit_chain_extend()  # the sequencer's round
    beat_all()
    seq, hash_ = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first()
    out = verify().splitlines()
    assert out[0] == f"audit chain OK: {seq} events"
    assert out[1].startswith(f"checkpoints: 3 verified, newest seq {seq} (node ")
    return seq, hash_


def test_deleting_the_newest_events_is_reported_against_the_signed_checkpoint(anchored, node_key_dir, tmp_path):
    seq, hash_ = anchored

    superuser_sql(f"DELETE FROM ledger_auditevent WHERE seq > {seq - 3}")

    (tmp_path / "empty").mkdir()
    assert verify("--checkpoints", str(tmp_path / "empty")) == f"audit chain OK: {seq - 3} events\n"
    error = verify_fails()
    assert error.startswith("audit chain truncated: checkpoint of node ")
    assert f"covers seq {seq} (hash {hash_}), the chain ends at seq {seq - 3}: newest events were deleted" in error

    # The nodes do not move their checkpoints back over the gap, even once new events refill it.
    signed = {p.name: p.read_text() for p in node_key_dir.glob("audit-checkpoint-*.json")}
    for _ in range(5):
        audit_record(kind="test.event", actor="test", payload={"after": True})
    checkpoints._due.clear()
    beat_all()
    assert {p.name: p.read_text() for p in node_key_dir.glob("audit-checkpoint-*.json")} == signed
    assert verify_fails().startswith("audit chain rewritten: checkpoint of node ")


def test_a_chain_changed_and_rehashed_by_the_superuser_is_reported_against_the_signed_checkpoint(anchored, tmp_path):
    seq, hash_ = anchored
    target = seq - 2
    updates, prev = [], AuditEvent.objects.get(seq=target - 1).hash
    for event in AuditEvent.objects.filter(seq__gte=target).order_by("seq"):
        payload = '{"n":"something else"}' if event.seq == target else event.payload
        event_hash = audit_event_hash(
            seq=event.seq, kind=event.kind, actor=event.actor, created_at=event.created_at.isoformat(),
            proposal_id=None if event.proposal_id is None else str(event.proposal_id), payload=payload, prev_hash=prev,
        )
        updates.append(
            f"UPDATE ledger_auditevent SET payload = '{payload}', prev_hash = '{prev}', hash = '{event_hash}' "
            f"WHERE seq = {event.seq}"
        )
        prev = event_hash
    superuser_sql(";\n".join(updates))

    (tmp_path / "empty").mkdir()
    assert verify("--checkpoints", str(tmp_path / "empty")) == f"audit chain OK: {seq} events\n"
    error = verify_fails()
    assert error.startswith("audit chain rewritten: checkpoint of node ")
    assert f"holds hash {hash_} at seq {seq}, the chain holds {prev} there" in error
