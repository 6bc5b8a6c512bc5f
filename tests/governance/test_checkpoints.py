"""Audit checkpoints: each node signs the chain's head into its own key folder, and
verify_audit reports deleted newest events (and a re-hashed chain) against them."""

import json
import logging
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from nacl.signing import SigningKey

from compliance.selectors.audit import audit_chain_status
from governance import checkpoints, keys
from ledger.models import AuditEvent
from ledger.services import audit_chain_extend, audit_event_hash, audit_record
from tests.builders import beat_all

NODES = ("risk", "portfolio", "execution")


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The checkpoint beat's monotonic clock, moved by hand; no checkpoint due from an earlier test."""
    now = [1_000.0]
    monkeypatch.setattr(checkpoints, "_clock", lambda: now[0])
    monkeypatch.setattr(checkpoints, "_due", {})

    class Clock:
        def advance(self, seconds):
            now[0] += seconds

    return Clock()


@pytest.fixture
def tamperable(seeded):
    """A database that lets the test delete or rewrite audit rows the way an intruder with
    the database's keys would: SQLite has none of the append-only triggers."""
    if connection.vendor != "sqlite":
        pytest.skip("the append-only triggers refuse this here; tests/integration/test_checkpoints.py does it behind them")


def verify(*args) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def verify_fails(*args) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", *args, stdout=StringIO(), stderr=StringIO())
    return str(failure.value)


def head():
    return AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first()


def checkpoint_files(directory):
    return sorted(p.name for p in directory.glob("audit-checkpoint-*.json"))


def add_events(n):
    for i in range(n):
        audit_record(kind="test.event", actor="test", payload={"n": i})
    audit_chain_extend()


def rehash_from(seq):
    """Re-hash every event from `seq` on, so the chain verifies again after an edit."""
    prev = AuditEvent.objects.get(seq=seq - 1).hash
    for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
        event_hash = audit_event_hash(
            seq=event.seq, kind=event.kind, actor=event.actor, created_at=event.created_at.isoformat(),
            proposal_id=None if event.proposal_id is None else str(event.proposal_id),
            payload=event.payload, prev_hash=prev,
        )
        AuditEvent.objects.filter(pk=event.pk).update(prev_hash=prev, hash=event_hash)
        prev = event_hash


# --- writing ------------------------------------------------------------------------------


def test_each_nodes_beat_signs_the_chain_head_into_its_own_key_folder(seeded, node_key_dir):
    seq, hash_ = head()

    beat_all()

    assert checkpoint_files(node_key_dir) == [f"audit-checkpoint-{n}.json" for n in sorted(NODES)]
    for node in NODES:
        path = node_key_dir / f"audit-checkpoint-{node}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # signed public data: verifiers read it
        checkpoint = checkpoints.checkpoint_verify(path)
        assert (checkpoint.node, checkpoint.key_id, checkpoint.seq, checkpoint.hash) == (
            node, keys.node_signer(node).key_id, seq, hash_
        )
        assert set(json.loads(path.read_text())) == {"type", "node", "key_id", "seq", "hash", "signed_at", "signature"}


def test_a_node_signs_once_per_interval(seeded, node_key_dir, clock, settings):
    settings.CHRONOSX_CHECKPOINT_INTERVAL_SECONDS = 60
    path = node_key_dir / "audit-checkpoint-risk.json"
    assert checkpoints.checkpoint_beat("risk").seq == head()[0]
    first = path.read_text()
    add_events(2)

    clock.advance(59)
    assert checkpoints.checkpoint_beat("risk") is None
    assert path.read_text() == first

    clock.advance(1)
    assert checkpoints.checkpoint_beat("risk").seq == head()[0] == json.loads(first)["seq"] + 2
    assert checkpoints.checkpoint_verify(path).seq == head()[0]


def test_a_node_process_writes_only_its_own_checkpoint(seeded, node_key_dir, settings):
    settings.CHRONOSX_NODE = "risk"
    settings.EMBEDDED_TASKS = False

    beat_all()

    assert checkpoint_files(node_key_dir) == ["audit-checkpoint-risk.json"]


def test_a_process_that_is_no_node_writes_no_checkpoint(seeded, node_key_dir, settings):
    settings.CHRONOSX_NODE = ""
    settings.EMBEDDED_TASKS = False

    beat_all()

    assert checkpoint_files(node_key_dir) == []


def test_an_empty_chain_is_not_checkpointed(db, node_key_dir):
    signing_key = SigningKey.generate()
    key_id = keys.key_id_for(node="risk", public_key=bytes(signing_key.verify_key))
    signer = keys.NodeSigner(node="risk", key_id=key_id, signing_key=signing_key)

    assert checkpoints.checkpoint_write(signer=signer) is None
    assert checkpoint_files(node_key_dir) == []


# --- verify_audit -------------------------------------------------------------------------


def test_verify_audit_without_checkpoint_files_answers_as_before(seeded):
    count = AuditEvent.objects.count()

    assert verify() == f"audit chain OK: {count} events\n"
    assert verify("--show-head") == f"audit chain OK: {count} events\nhead {head()[1]}\n"


def test_verify_audit_reports_the_checkpoints_it_verified(seeded):
    beat_all()
    add_events(3)  # the chain goes on after the checkpoint: that is fine
    seq = head()[0] - 3
    newest = max(
        (checkpoints.checkpoint_parse(checkpoints.checkpoint_path(n)) for n in NODES), key=lambda c: c.signed_at
    )

    assert verify("--show-head").splitlines() == [
        f"audit chain OK: {AuditEvent.objects.count()} events",
        f"checkpoints: 3 verified, newest seq {seq} (node {newest.node} signed at {newest.signed_at})",
        f"head {head()[1]}",
    ]


def test_with_a_checkpoint_folder_set_nodes_write_there_and_verification_reads_there(
    seeded, node_key_dir, tmp_path, settings
):
    """A deployment whose node keys sit in folders the verifiers may not enter names one
    checkpoint folder: the nodes' keys stay where they are, their checkpoints go there."""
    settings.CHRONOSX_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    beat_all()

    assert checkpoint_files(tmp_path / "checkpoints") == [f"audit-checkpoint-{n}.json" for n in sorted(NODES)]
    assert checkpoint_files(node_key_dir) == []
    assert verify().splitlines()[1].startswith("checkpoints: 3 verified")
    assert audit_chain_status().checkpoints == 3  # the admin's Verify chain and the audit export


def test_checkpoints_are_read_from_every_folder_named(seeded, node_key_dir, tmp_path):
    beat_all()
    copies = []
    for node in ("risk", "execution"):  # e.g. copies fetched from two node hosts
        copies.append(tmp_path / f"from-{node}")
        copies[-1].mkdir()
        (node_key_dir / f"audit-checkpoint-{node}.json").rename(copies[-1] / f"audit-checkpoint-{node}.json")

    out = verify("--checkpoints", str(copies[0]), "--checkpoints", str(copies[1]))

    assert out.splitlines()[1].startswith(f"checkpoints: 2 verified, newest seq {head()[0]} (node ")


def test_a_checkpoint_folder_named_that_does_not_exist_is_an_error(seeded, tmp_path):
    assert verify_fails("--checkpoints", str(tmp_path / "nowhere")) == f"no such checkpoint folder: {tmp_path / 'nowhere'}"


def test_deleting_the_newest_events_is_reported_against_the_signed_checkpoint(tamperable, node_key_dir, tmp_path):
    add_events(5)
    beat_all()
    seq, hash_ = head()
    assert verify().splitlines()[0] == f"audit chain OK: {seq} events"

    AuditEvent.objects.filter(seq__gt=seq - 3).delete()

    # The chain alone still verifies: what is gone left no gap.
    (tmp_path / "empty").mkdir()
    assert verify("--checkpoints", str(tmp_path / "empty")) == f"audit chain OK: {seq - 3} events\n"
    error = verify_fails()
    assert error.startswith("audit chain truncated: checkpoint of node ")
    assert f"covers seq {seq} (hash {hash_}), the chain ends at seq {seq - 3}: newest events were deleted" in error


def test_a_node_keeps_its_checkpoint_when_the_chain_no_longer_holds_it(tamperable, node_key_dir, clock, caplog):
    beat_all()
    path = node_key_dir / "audit-checkpoint-risk.json"
    signed = path.read_text()
    seq, hash_ = head()
    AuditEvent.objects.filter(seq__gt=seq - 2).delete()
    clock.advance(60)

    with caplog.at_level(logging.ERROR, logger="governance.checkpoints"):
        assert checkpoints.checkpoint_beat("risk") is None
    assert path.read_text() == signed
    assert "audit chain no longer holds the checkpoint node risk signed at" in caplog.text
    assert "the chain ends at seq" in caplog.text

    add_events(4)  # new events where the deleted ones were: the chain is longer, but not the one signed
    clock.advance(60)
    assert checkpoints.checkpoint_beat("risk") is None
    assert path.read_text() == signed
    error = verify_fails()
    assert error.startswith("audit chain rewritten: checkpoint of node ")
    assert f"holds hash {hash_} at seq {seq}, the chain holds {AuditEvent.objects.get(seq=seq).hash} there" in error


def test_a_chain_changed_and_rehashed_is_reported_against_the_signed_checkpoint(tamperable, tmp_path):
    add_events(5)
    beat_all()
    seq, hash_ = head()
    target = seq - 2
    AuditEvent.objects.filter(seq=target).update(payload='{"n":"something else"}')
    rehash_from(target)

    (tmp_path / "empty").mkdir()
    assert verify("--checkpoints", str(tmp_path / "empty")) == f"audit chain OK: {seq} events\n"
    error = verify_fails()
    assert error.startswith("audit chain rewritten: checkpoint of node ")
    assert f"holds hash {hash_} at seq {seq}, the chain holds {head()[1]} there" in error
    assert f"an event up to seq {seq} was changed and the chain re-hashed" in error


# --- forged anchors -----------------------------------------------------------------------


def other_char(c: str) -> str:
    """Another character of the same kind, so the file still parses and only the signature can tell."""
    for pool in ("0123456789abcdef", "ghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
        if c in pool:
            return pool[(pool.index(c) + 1) % len(pool)]
    return "A"


@pytest.mark.parametrize(
    "field, at",
    [("signature", 1), ("seq", -1), ("hash", 1), ("signed_at", -8), ("key_id", -2)],
    ids=["signature", "seq", "hash", "signed_at", "key_id"],
)
def test_a_checkpoint_with_one_changed_byte_fails_as_forged(seeded, node_key_dir, field, at):
    beat_all()
    path = node_key_dir / "audit-checkpoint-portfolio.json"
    raw, data = path.read_text(), json.loads(path.read_text())
    value = json.dumps(data[field])  # as the file spells it: "…" for a string, digits for seq
    where = raw.index(f'"{field}": {value}') + len(f'"{field}": ') + (at if at > 0 else len(value) + at)
    path.write_text(raw[:where] + other_char(raw[where]) + raw[where + 1 :])

    error = verify_fails()

    assert error.startswith(f"audit checkpoint {path} does not verify (")
    assert error.endswith("): a forged or damaged anchor")
    assert "truncated" not in error and "rewritten" not in error  # a forged anchor is never compared


def test_a_checkpoint_signed_with_an_unregistered_key_fails_as_forged(seeded, node_key_dir):
    signing_key = SigningKey.generate()
    key_id = keys.key_id_for(node="risk", public_key=bytes(signing_key.verify_key))
    intruder = keys.NodeSigner(node="risk", key_id=key_id, signing_key=signing_key)
    forged = checkpoints.checkpoint_sign(signer=intruder, seq=head()[0] + 100, hash="a" * 64)
    path = node_key_dir / "audit-checkpoint-risk.json"
    node_key_dir.mkdir(exist_ok=True)
    path.write_text(json.dumps({**forged.payload(), "signature": forged.signature}))

    error = verify_fails()

    assert error == f"audit checkpoint {path} does not verify (key id {key_id!r} is not registered): a forged or damaged anchor"


def test_a_checkpoint_signed_with_another_nodes_key_fails_as_forged(seeded, node_key_dir):
    other = keys.node_signer("execution")
    lying = keys.NodeSigner(node="risk", key_id=other.key_id, signing_key=other.signing_key)
    forged = checkpoints.checkpoint_sign(signer=lying, seq=head()[0], hash=head()[1])
    path = node_key_dir / "audit-checkpoint-risk.json"
    path.write_text(json.dumps({**forged.payload(), "signature": forged.signature}))

    assert f"key id {other.key_id} is node execution's, not risk's" in verify_fails()
