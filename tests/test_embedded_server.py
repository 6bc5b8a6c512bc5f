"""The embedded default however it is served: `manage.py runserver` beats, sweeps and
expires like uvicorn does, and the embedded default refuses a live venue at startup."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]

# A proposal pending its vote with no vote coming: decided (approve), voting open, a 1 s timeout.
PENDING_WITHOUT_VOTES = """
import uuid
from datetime import timedelta
from django.utils import timezone
from governance.models import Agent, Decision, Instrument, Proposal, Ruleset, Strategy
agent = Agent.objects.get(name="walk")
now = timezone.now()
ruleset = Ruleset.objects.get(status="published")
proposal = Proposal.objects.create(
    agent=agent, strategy=Strategy.objects.get(slug="demo"), instrument=Instrument.objects.get(symbol="BTCUSDT"),
    side="buy", quantity="0.0010", order_type="market", reference_price="65000", expected_slippage_bps="1",
    confidence="0.9", signal_time=now, received_at=now, status_changed_at=now,
    idempotency_key=uuid.uuid4().hex, request_hash="0" * 64,
)
Decision.objects.create(
    proposal=proposal, outcome="approve", approved_quantity="0.0010", ruleset=ruleset, ruleset_version=ruleset.version,
    decided_at=now, checks=[], inputs={"proposal": {}, "context": {}, "rules": {"quorum_required": 2, "vote_timeout_seconds": "1"}},
    digest="0" * 64,
)
print(proposal.id)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def embedded_env(var_dir: Path, **extra) -> dict:
    """The embedded default: no DATABASE_URL, no broker; only its var/ directory is the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "CHRONOSX_", "WEEX_", "DJANGO_"))}
    env.update(CHRONOSX_VAR_DIR=str(var_dir), CHRONOSX_SWEEP_INTERVAL_SECONDS="0.5", PYTHONUNBUFFERED="1", **extra)
    return env


def manage(env, *args) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_runserver_on_a_fresh_database_beats_and_expires_a_proposal_without_votes(tmp_path):
    env = embedded_env(tmp_path / "var")
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "seed_demo")
    token = manage(env, "create_agent", "walk", "--strategy", "demo").splitlines()[-1]
    port = free_port()
    log = open(tmp_path / "runserver.log", "w")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        # Up to a minute to start (system checks on a busy machine); the behaviour under test
        # is what follows, each within 10 s.
        started, body = time.monotonic(), None
        while time.monotonic() - started < 60:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=2).json()
            except requests.ConnectionError:
                body = None
            if body and body["status"] == "ok":
                break
            time.sleep(0.2)
        assert body and body["status"] == "ok", (body, (tmp_path / "runserver.log").read_text())
        assert all(body["nodes"][node]["alive"] for node in ("risk", "portfolio", "execution"))
        assert all(body["workers"][kind]["alive"] for kind in ("governance", "router", "scheduler"))

        proposal_id = manage(env, "shell", "-v0", "-c", PENDING_WITHOUT_VOTES).strip()
        url = f"http://127.0.0.1:{port}/api/v1/proposals/{proposal_id}/"
        headers = {"Authorization": f"Token {token}"}
        started, status = time.monotonic(), None
        while time.monotonic() - started < 10:
            answer = requests.get(url, headers=headers, timeout=2).json()
            status = answer.get("status", answer)
            if status != "pending":
                break
            time.sleep(0.2)
        assert status == "expired"
        assert requests.get(url, headers=headers, timeout=2).json()["quorum"]["votes"] == []
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("venue", ["weex"])
def test_the_embedded_default_refuses_a_live_venue_at_startup(tmp_path, venue):
    env = embedded_env(tmp_path / "var", CHRONOSX_VENUE=venue)
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"CHRONOSX_VENUE={venue} needs CELERY_BROKER_URL and a separate router worker" in done.stderr


def test_a_database_url_without_a_secret_key_refuses_to_start(tmp_path):
    env = embedded_env(tmp_path / "var", DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DATABASE_URL is" in done.stderr
    env["DJANGO_SECRET_KEY"] = "a-key-of-this-installation"
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_settings_create_nothing_on_import(tmp_path):
    env = embedded_env(tmp_path / "var")
    code = "import chronosx.settings"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "var").exists()
