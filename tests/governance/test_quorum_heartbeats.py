"""Worker heartbeats (the three nodes among them) and what /api/v1/health/ makes of them."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from governance import keys, nodes
from governance.models import WorkerHeartbeat
from tests.builders import beat_all


@pytest.fixture
def health(seeded):
    def get():
        response = APIClient().get("/api/v1/health/")
        return response.status_code, response.json()

    return get


def test_embedded_nodes_beat_and_health_is_ok(health):
    beat_all()

    code, body = health()
    assert (code, body["status"]) == (200, "ok")
    assert all(body["nodes"][n]["alive"] for n in ("risk", "portfolio", "execution"))
    assert all(body["workers"][kind]["alive"] for kind in ("governance", "router", "scheduler"))
    beats = {hb.kind: hb.key_id for hb in WorkerHeartbeat.objects.filter(kind__in=["risk", "portfolio", "execution"])}
    assert beats == {n: keys.node_signer(n).key_id for n in ("risk", "portfolio", "execution")}


def test_a_node_without_its_key_does_not_beat_and_health_is_degraded(health, node_key_dir):
    (node_key_dir / "execution.key").unlink()

    beat_all()

    code, body = health()
    assert (code, body["status"]) == (200, "degraded")
    assert body["nodes"]["execution"] == {"alive": False, "last_heartbeat": None}
    assert body["nodes"]["risk"]["alive"] is True


def test_health_is_down_when_quorum_is_impossible(health):
    beat_all()
    stale = timezone.now() - timedelta(minutes=5)
    WorkerHeartbeat.objects.filter(kind__in=["portfolio", "execution"]).update(last_heartbeat=stale)

    code, body = health()
    assert (code, body["status"]) == (503, "down")
    assert body["nodes"]["portfolio"]["alive"] is False
    assert body["nodes"]["portfolio"]["last_heartbeat"] == stale.isoformat()


def test_a_node_process_beats_for_itself_only(seeded, settings):
    settings.CHRONOSX_NODE = "portfolio"
    settings.EMBEDDED_TASKS = False

    assert nodes.node_beat("portfolio") is True
    assert nodes.node_beat("risk") is False  # it may not even load risk's key
    assert list(WorkerHeartbeat.objects.values_list("kind", flat=True)) == ["portfolio"]


def test_health_is_degraded_while_a_pipeline_worker_is_missing(health):
    beat_all()
    WorkerHeartbeat.objects.filter(kind="router").delete()

    code, body = health()
    assert (code, body["status"]) == (200, "degraded")
    assert body["workers"]["router"] == {"alive": False, "last_heartbeat": None}
    assert body["workers"]["governance"]["alive"] is True
