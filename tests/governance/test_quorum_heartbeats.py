"""Node heartbeats and what /api/v1/health/ makes of them."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from governance import keys, nodes
from governance.models import NodeHeartbeat


@pytest.fixture
def health(seeded):
    def get():
        response = APIClient().get("/api/v1/health/")
        return response.status_code, response.json()

    return get


def test_embedded_nodes_beat_and_health_is_ok(health):
    nodes.embedded_heartbeat()

    code, body = health()
    assert (code, body["status"]) == (200, "ok")
    assert all(body["nodes"][n]["alive"] for n in ("risk", "portfolio", "execution"))
    beats = {hb.node: hb.key_id for hb in NodeHeartbeat.objects.all()}
    assert beats == {n: keys.node_signer(n).key_id for n in ("risk", "portfolio", "execution")}


def test_a_node_without_its_key_does_not_beat_and_health_is_degraded(health, node_key_dir):
    (node_key_dir / "execution.key").unlink()

    nodes.embedded_heartbeat()

    code, body = health()
    assert (code, body["status"]) == (200, "degraded")
    assert body["nodes"]["execution"] == {"alive": False, "last_heartbeat": None}
    assert body["nodes"]["risk"]["alive"] is True


def test_health_is_down_when_quorum_is_impossible(health):
    nodes.embedded_heartbeat()
    stale = timezone.now() - timedelta(minutes=5)
    NodeHeartbeat.objects.filter(node__in=["portfolio", "execution"]).update(last_heartbeat=stale)

    code, body = health()
    assert (code, body["status"]) == (503, "down")
    assert body["nodes"]["portfolio"]["alive"] is False
    assert body["nodes"]["portfolio"]["last_heartbeat"] == stale.isoformat()


def test_a_node_process_beats_for_itself_only(seeded, settings):
    settings.CHRONOSX_NODE = "portfolio"
    settings.EMBEDDED_TASKS = False

    nodes.embedded_heartbeat()  # not embedded: nothing
    assert not NodeHeartbeat.objects.exists()
    assert nodes.node_beat_once("portfolio") is True
    assert nodes.node_beat_once("risk") is False  # it may not even load risk's key
    assert list(NodeHeartbeat.objects.values_list("node", flat=True)) == ["portfolio"]
