"""Receipts verify offline with the published node keys; any changed byte fails them."""

import base64
import copy
import json
import sys
from pathlib import Path

import pytest

from tests.builders import post_proposal

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
from chronosx_client import receipt_problem, verify_receipt  # noqa: E402


@pytest.fixture
def filled(api, trading_enabled):
    proposal = post_proposal(api).json()
    assert proposal["status"] == "filled", proposal
    return proposal


@pytest.fixture
def node_keys(client):
    return client.get("/api/v1/node-keys/").json()


def test_node_keys_are_public_one_active_ed25519_key_per_node(client, seeded):
    response = client.get("/api/v1/node-keys/")

    assert response.status_code == 200
    keys = response.json()
    assert sorted(key["node"] for key in keys if key["active"]) == ["execution", "portfolio", "risk"]
    assert all(len(base64.b64decode(key["public_key"])) == 32 and key["key_id"].startswith(key["node"]) for key in keys)


def test_a_receipt_of_an_executed_proposal_verifies_offline(api, filled, node_keys):
    receipt = api.get(f"/api/v1/proposals/{filled['id']}/receipt/").json()

    assert receipt_problem(receipt, node_keys) is None
    assert verify_receipt(json.loads(json.dumps(receipt)), node_keys) is True
    assert receipt["quorum"]["required"] == 2 and len(receipt["votes"]) == 3
    assert receipt["decision_digest"] == filled_digest(api, filled)
    assert receipt["ruleset"]["version"] == filled["decision"]["ruleset_version"]


def filled_digest(api, proposal):
    votes = api.get(f"/api/v1/proposals/{proposal['id']}/").json()["quorum"]["votes"]
    return votes[0]["decision_digest"]


def leaves(value, path=()):
    """Every scalar in a JSON document, with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def changed(value):
    """The same value with one byte different."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if value is None:
        return "0"
    if value == "":
        return "x"
    last = value[-1]
    return value[:-1] + ("A" if last != "A" else "B")


def test_one_changed_byte_in_any_field_fails_the_receipt(api, filled, node_keys):
    receipt = api.get(f"/api/v1/proposals/{filled['id']}/receipt/").json()
    paths = list(leaves(receipt))
    assert len(paths) > 60  # the decision's checks and inputs are all in it

    for path, value in paths:
        altered = copy.deepcopy(receipt)
        target = altered
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = changed(value)
        assert verify_receipt(altered, node_keys) is False, f"changing {'.'.join(map(str, path))} went unnoticed"


def test_a_receipt_with_a_vote_removed_below_the_quorum_or_a_foreign_key_fails(api, filled, node_keys):
    receipt = api.get(f"/api/v1/proposals/{filled['id']}/receipt/").json()
    one_vote = {**receipt, "votes": receipt["votes"][:1]}
    assert verify_receipt(one_vote, node_keys) is False
    lowered = copy.deepcopy(one_vote)
    lowered["quorum"]["required"] = 1
    assert verify_receipt(lowered, node_keys) is False
    assert verify_receipt(receipt, [key for key in node_keys if key["node"] != "risk"]) is False
    assert verify_receipt(receipt, []) is False


def test_no_receipt_before_the_quorum_for_a_block_or_for_another_agents_proposal(api, other_api, seeded):
    blocked = post_proposal(api).json()  # trading is halted
    assert blocked["status"] == "blocked"
    assert api.get(f"/api/v1/proposals/{blocked['id']}/receipt/").status_code == 404
    assert other_api.get(f"/api/v1/proposals/{blocked['id']}/receipt/").status_code == 404
    assert api.get("/api/v1/proposals/not-a-uuid/receipt/").json()["error"]["code"] == "not_found"
