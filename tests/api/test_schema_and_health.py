import json

from rest_framework.test import APIClient

from governance.services.controls import breaker_trip
from tests.builders import beat_all


def test_the_schema_is_an_openapi_3_document_with_the_proposal_paths(db):
    response = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/proposals/"])
    detail = next(p for p in paths if p.startswith("/api/v1/proposals/{"))
    assert "get" in paths[detail]
    assert "/api/v1/health/" in paths
    request_schema = json.dumps(paths["/api/v1/proposals/"]["post"]["requestBody"])
    assert "ProposalIn" in request_schema


def test_the_schema_is_served_as_yaml_by_default(db):
    response = APIClient().get("/api/v1/schema/")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


def test_health_needs_no_token_and_has_the_contract_shape(seeded):
    response = APIClient().get("/api/v1/health/")
    body = response.json()
    assert set(body) >= {"status", "database", "broker", "nodes", "workers", "trading", "circuit_breakers"}
    assert body["status"] in ("ok", "degraded", "down")
    assert response.status_code == (503 if body["status"] == "down" else 200)
    assert body["database"] == "ok"
    assert body["broker"] == "embedded"  # no CELERY_BROKER_URL in unit tests
    assert set(body["nodes"]) == {"risk", "portfolio", "execution"}
    for node in body["nodes"].values():
        assert set(node) >= {"alive", "last_heartbeat"} and isinstance(node["alive"], bool)
    assert body["trading"]["enabled"] is False and body["trading"]["reason"]
    assert body["circuit_breakers"] and all(set(b) >= {"name", "tripped"} for b in body["circuit_breakers"])


def test_health_is_200_and_ok_when_all_nodes_beat(seeded):
    beat_all()
    response = APIClient().get("/api/v1/health/")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert all(n["alive"] and n["last_heartbeat"] for n in body["nodes"].values())


def test_health_reports_trading_and_tripped_breakers(trading_enabled):
    breaker_trip(name="venue_errors", actor="test", reason="tests")
    body = APIClient().get("/api/v1/health/").json()
    assert body["trading"]["enabled"] is True
    assert {"name": "venue_errors", "tripped": True} in [{k: b[k] for k in ("name", "tripped")} for b in body["circuit_breakers"]]
