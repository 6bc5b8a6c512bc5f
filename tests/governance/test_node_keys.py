"""MPC node key pairs: files, registration, rotation, and who may load which key."""

import base64
import json
import stat

import pytest
from django.core.management import CommandError, call_command

from chronosx import pipeline
from governance import keys, nodes
from governance.models import NodeKey, Proposal, Vote
from governance.selectors.quorum import quorum_certificate_verify, quorum_summary
from ledger.models import AuditEvent
from tests.builders import post_proposal


@pytest.fixture
def fresh_key_cache():
    keys._public_keys.clear()
    yield
    keys._public_keys.clear()


def test_ensure_creates_one_private_key_file_per_node_readable_only_by_its_owner(db, node_key_dir):
    created = keys.node_keys_ensure()

    assert [c.split()[0] for c in created] == ["risk", "portfolio", "execution"]
    assert sorted(p.name for p in node_key_dir.iterdir()) == ["execution.key", "portfolio.key", "risk.key"]
    for node in ("risk", "portfolio", "execution"):
        path = node_key_dir / f"{node}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = json.loads(path.read_text())
        row = NodeKey.objects.get(node=node)
        # The database holds the public key only.
        assert (row.key_id, row.public_key, row.active) == (data["key_id"], data["public_key"], True)
        assert data["private_key"] not in json.dumps(list(NodeKey.objects.values()), default=str)
    assert AuditEvent.objects.filter(kind="node_key.registered").count() == 3


def test_ensure_is_idempotent_and_registers_key_files_the_database_does_not_know(db, node_key_dir):
    keys.node_keys_ensure()
    before = {p.name: p.read_text() for p in node_key_dir.iterdir()}
    assert keys.node_keys_ensure() == []

    NodeKey.objects.filter(node="portfolio").delete()  # e.g. a fresh database with the old key directory
    assert keys.node_keys_ensure() == [f"portfolio ({json.loads(before['portfolio.key'])['key_id']}, registered)"]
    assert {p.name: p.read_text() for p in node_key_dir.iterdir()} == before


def test_generate_command_writes_one_node_key_and_prints_it(db, node_key_dir, capsys):
    call_command("node_keys", "generate", "--node", "risk")

    out = capsys.readouterr().out
    key_id = NodeKey.objects.get(node="risk").key_id
    assert out.startswith(f"risk: generated: key id {key_id} public key ")
    assert [p.name for p in node_key_dir.iterdir()] == ["risk.key"]

    call_command("node_keys", "generate", "--node", "risk")
    assert capsys.readouterr().out.startswith(f"risk: already present: key id {key_id}")
    assert NodeKey.objects.count() == 1


def test_rotate_needs_a_node(db):
    with pytest.raises(CommandError, match="rotate needs --node NAME"):
        call_command("node_keys", "rotate")


def test_a_corrupt_key_file_is_reported_not_overwritten(db, node_key_dir):
    node_key_dir.mkdir(parents=True)
    (node_key_dir / "risk.key").write_text("not a key")

    with pytest.raises(CommandError, match="unreadable key file"):
        call_command("node_keys", "generate", "--node", "risk")
    assert (node_key_dir / "risk.key").read_text() == "not a key"


def test_rotation_signs_new_votes_with_a_new_key_id_and_old_votes_still_verify(api, trading_enabled, capsys):
    first = post_proposal(api).json()["id"]
    old_key_id = Vote.objects.get(proposal_id=first, node="risk").key_id

    call_command("node_keys", "rotate", "--node", "risk")

    new_key_id = keys.node_signer("risk").key_id
    assert new_key_id != old_key_id and new_key_id in capsys.readouterr().out
    assert NodeKey.objects.get(key_id=old_key_id).active is False
    second = post_proposal(api).json()["id"]
    assert Vote.objects.get(proposal_id=second, node="risk").key_id == new_key_id
    assert quorum_certificate_verify(proposal_id=first)[0] is True
    old_vote = next(v for v in quorum_summary(proposal=Proposal.objects.get(id=first))["votes"] if v["node"] == "risk")
    assert old_vote["verified"] is True


def test_a_vote_signed_with_a_retired_key_is_refused(api, trading_enabled, node_key_dir, monkeypatch):
    real_enqueue = pipeline.enqueue
    # All nodes stopped: votes are never delivered.
    monkeypatch.setattr(pipeline, "enqueue", lambda stage, *a, queue=None: None if stage == pipeline.VOTE else real_enqueue(stage, *a, queue=queue))
    proposal_id = post_proposal(api).json()["id"]
    old_file = (node_key_dir / "risk.key").read_text()
    keys.node_key_rotate(node="risk", actor="test")
    (node_key_dir / "risk.key").write_text(old_file)  # a node still holding its old key

    assert nodes.node_vote(proposal_id=proposal_id, node="risk") is None
    refusal = AuditEvent.objects.get(proposal_id=proposal_id, kind="vote.refused")
    assert "is retired" in refusal.payload


def test_a_node_process_loads_its_own_key_and_no_other(db, settings):
    keys.node_keys_ensure()
    settings.CHRONOSX_NODE = "risk"
    settings.EMBEDDED_TASKS = False

    assert keys.node_signer("risk").key_id == NodeKey.objects.get(node="risk").key_id
    for other in ("portfolio", "execution"):
        with pytest.raises(keys.NodeKeyError, match=f"this process is node 'risk'; it never loads or signs as '{other}'"):
            keys.node_signer(other)


def test_a_process_that_is_no_node_loads_no_key(db, settings):
    keys.node_keys_ensure()
    settings.CHRONOSX_NODE = ""
    settings.EMBEDDED_TASKS = False

    with pytest.raises(keys.NodeKeyError, match="not an MPC node"):
        keys.node_signer("risk")


def test_a_key_file_of_another_node_is_refused(db, node_key_dir):
    keys.node_keys_ensure()
    (node_key_dir / "risk.key").write_text((node_key_dir / "portfolio.key").read_text())

    with pytest.raises(keys.NodeKeyError, match="is not a chronosx-node-key-v1 key file of node 'risk'"):
        keys.node_signer("risk")


def test_a_registered_public_key_edited_in_the_database_verifies_nothing(db, fresh_key_cache):
    keys.node_keys_ensure()
    row = NodeKey.objects.get(node="risk")
    other = NodeKey.objects.get(node="portfolio").public_key
    NodeKey.objects.filter(pk=row.pk).update(public_key=other)

    assert keys.public_key_lookup(row.key_id) is None


def test_key_ids_are_derived_from_the_public_key(db):
    keys.node_keys_ensure()
    for row in NodeKey.objects.all():
        assert row.key_id == keys.key_id_for(node=row.node, public_key=base64.b64decode(row.public_key))
