"""scripts/test and scripts/services-up stop, naming the service, when one cannot be started;
under CI=true a test that would skip for a missing service fails instead.

The real PostgreSQL cluster and the real Redis are never touched: PostgreSQL and Redis are
"made unavailable" with fake Debian tools (pg_lsclusters, pg_ctlcluster, redis-server, …)
put first on PATH, and with free ports nothing listens on.
"""

import os
import socket
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_tools(directory: Path, **scripts: str) -> Path:
    """Executables named after the keyword arguments (redis_server: redis-server), each a small sh script."""
    directory.mkdir(parents=True, exist_ok=True)
    # Whatever a test does not fake on purpose must not reach the real cluster.
    guards = {"su": 'echo "fake su: not expected here" >&2; exit 1', "pg_createcluster": "exit 1"}
    scripts = {name: body for name, body in guards.items() if not (directory / name).exists()} | scripts
    for name, body in scripts.items():
        path = directory / (name.replace("_", "-") if name.startswith("redis_") else name)
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return directory


def pg_cluster(version, name, port, status):
    return f"{version} {name} {port} {status} postgres /var/lib/postgresql/{version}/{name} /var/log/postgresql/postgresql-{version}-{name}.log"


def postgresql_down(directory: Path) -> Path:
    """15/main is down and will not start; an unrelated cluster is online (the reported case)."""
    clusters = "\n".join([pg_cluster(15, "main", 5432, "down"), pg_cluster(16, "other", 5433, "online")])
    return fake_tools(
        directory,
        pg_lsclusters=f"cat <<'EOF'\n{clusters}\nEOF",
        pg_ctlcluster='echo "Error: could not bind IPv4 address \\"127.0.0.1\\": Address already in use" >&2; exit 1',
        pg_isready="exit 2",
    )


def postgresql_up(directory: Path) -> Path:
    """A PostgreSQL that answers everything, so that only Redis is at stake."""
    return fake_tools(
        directory,
        pg_lsclusters=f"echo '{pg_cluster(15, 'main', 5432, 'online')}'",
        pg_ctlcluster='echo "fake pg_ctlcluster: not expected here" >&2; exit 1',
        pg_isready="exit 0",
        su="echo 1",
        psql="echo 1",
    )


def run(command, *, path_first: Path, timeout=LIMIT_SECONDS, **env):
    environment = {k: v for k, v in os.environ.items() if k not in {"CI", "CHRONOSX_REDIS_PORT"} and not k.startswith("CHRONOSX_PG_")}
    environment.update(PATH=f"{path_first}{os.pathsep}{os.environ['PATH']}", PYTHON=sys.executable, **env)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


# --- services-up ---------------------------------------------------------------------------


def test_services_up_exits_non_zero_naming_postgresql_when_its_cluster_cannot_start(tmp_path):
    done, elapsed = run(["scripts/services-up"], path_first=postgresql_down(tmp_path / "bin"))

    assert done.returncode != 0
    assert elapsed < LIMIT_SECONDS
    assert "services-up: PostgreSQL 15/main did not start on port 5432: Error: could not bind" in done.stderr
    assert done.stdout == ""  # no DATABASE_URL for eval to pick up


def test_services_up_checks_its_own_cluster_s_port_not_any_online_cluster(tmp_path):
    # 15/main claims to start but nothing answers on its port, while another cluster (and the
    # machine's real one on 5432) is online: that must not count.
    port = free_port()
    clusters = "\n".join([pg_cluster(15, "main", port, "down"), pg_cluster(16, "other", 5432, "online")])
    bin_dir = fake_tools(tmp_path / "bin", pg_lsclusters=f"cat <<'EOF'\n{clusters}\nEOF", pg_ctlcluster="exit 0")

    done, elapsed = run(["scripts/services-up"], path_first=bin_dir, CHRONOSX_SERVICES_WAIT_SECONDS="2")

    assert done.returncode != 0
    assert elapsed < LIMIT_SECONDS
    assert f"services-up: PostgreSQL 15/main did not start on port {port}: no answer on 127.0.0.1:{port}" in done.stderr


def test_services_up_exits_non_zero_naming_a_postgresql_cluster_that_does_not_exist(tmp_path):
    done, elapsed = run(
        ["scripts/services-up"], path_first=fake_tools(tmp_path / "bin"), CHRONOSX_PG_CLUSTER="no_such_cluster"
    )

    assert done.returncode != 0
    assert elapsed < LIMIT_SECONDS
    assert "services-up: PostgreSQL " in done.stderr and "/no_such_cluster does not exist" in done.stderr


@pytest.mark.parametrize(
    "redis_server, message",
    [
        ('echo "Could not create server TCP listening socket: Address already in use"; exit 1', "Redis did not start on"),
        ("exit 0", "Redis did not answer on"),  # "daemonized", then nothing listens
    ],
    ids=["start-fails", "never-answers"],
)
def test_services_up_exits_non_zero_naming_redis_when_it_cannot_start(tmp_path, redis_server, message):
    port = free_port()
    bin_dir = fake_tools(postgresql_up(tmp_path / "bin"), redis_server=redis_server)

    done, elapsed = run(
        ["scripts/services-up"], path_first=bin_dir, CHRONOSX_REDIS_PORT=str(port), CHRONOSX_SERVICES_WAIT_SECONDS="1"
    )

    assert done.returncode != 0
    assert elapsed < LIMIT_SECONDS
    assert f"services-up: {message} 127.0.0.1:{port}" in done.stderr
    assert "CHRONOSX_TEST_REDIS_URL" not in done.stdout


# --- scripts/test --------------------------------------------------------------------------


def test_scripts_test_exits_non_zero_naming_postgresql_when_it_cannot_start(tmp_path):
    done, elapsed = run(
        ["scripts/test", "--co", "-q", "tests/test_scripts.py"], path_first=postgresql_down(tmp_path / "bin")
    )

    assert done.returncode != 0
    assert elapsed < LIMIT_SECONDS
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("scripts/test: PostgreSQL 15/main did not start on port 5432"), done.stderr
    assert "test session starts" not in done.stdout + done.stderr  # pytest never ran


def test_scripts_test_exits_non_zero_naming_redis_when_it_cannot_start(tmp_path):
    port = free_port()
    bin_dir = fake_tools(postgresql_up(tmp_path / "bin"), redis_server="exit 1")

    done, elapsed = run(
        ["scripts/test", "--co", "-q", "tests/test_scripts.py"],
        path_first=bin_dir,
        CHRONOSX_REDIS_PORT=str(port),
        CHRONOSX_SERVICES_WAIT_SECONDS="1",
    )

    assert done.returncode != 0
    assert elapsed < LIMIT_SECONDS
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"scripts/test: Redis did not start on 127.0.0.1:{port}"), done.stderr


def test_scripts_test_exits_non_zero_naming_chromium_when_it_does_not_run(tmp_path):
    bin_dir = fake_tools(tmp_path / "bin", chromium='echo "chromium: error while loading shared libraries" >&2; exit 127')

    done, elapsed = run(
        ["scripts/test", "--co", "-q", "tests/test_scripts.py"],
        path_first=bin_dir,
        CHRONOSX_CHROMIUM=str(bin_dir / "chromium"),
    )

    assert done.returncode != 0
    assert elapsed < LIMIT_SECONDS
    assert "scripts/test: Chromium does not run" in done.stderr
    assert "services-up" not in done.stderr


# --- CI=true: a service skip fails ---------------------------------------------------------

SAMPLE_TESTS = '''
import pytest

from tests.ci_services import service_missing


def test_calls_service_missing():
    service_missing("needs PostgreSQL (set DATABASE_URL)")


def test_plain_skip_naming_redis():
    pytest.skip("integration: CHRONOSX_TEST_REDIS_URL is not set")


@pytest.mark.skipif(True, reason="needs the PostgreSQL superuser")
def test_skipif_marker_naming_postgresql():
    pass


def test_skip_for_another_reason():
    pytest.skip("only meaningful on a Tuesday")


@pytest.mark.xfail(reason="browser bug, expected")
def test_expected_failure():
    assert False
'''

SERVICE_TESTS = ["test_calls_service_missing", "test_plain_skip_naming_redis", "test_skipif_marker_naming_postgresql"]


def run_sample(tmp_path, ci):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(SAMPLE_TESTS))
    environment = {k: v for k, v in os.environ.items() if k not in {"CI", "DJANGO_SETTINGS_MODULE"}}
    environment["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        environment["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_services", "-p", "no:cacheprovider", "-p", "no:django",
         "-q", "--junitxml", "report.xml", "test_sample.py"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=LIMIT_SECONDS,
    )
    outcomes = {}
    for case in ET.parse(tmp_path / "report.xml").iter("testcase"):
        children = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
        outcomes[case.get("name")] = children[0] if children else "passed"
    return done, outcomes


def test_under_ci_a_test_that_would_skip_for_a_missing_service_fails(tmp_path):
    done, outcomes = run_sample(tmp_path, "true")

    assert done.returncode != 0
    # A skip in a test body fails it; a skip marker fails its setup (pytest reports an error).
    assert [outcomes[name] in {"failure", "error"} for name in SERVICE_TESTS] == [True] * 3, outcomes
    assert outcomes["test_skip_for_another_reason"] == "skipped"
    assert outcomes["test_expected_failure"] == "skipped"  # xfail is left alone
    assert "CI=true: a missing service fails the run instead of skipping" in done.stdout


def test_outside_ci_a_test_that_needs_a_missing_service_skips(tmp_path):
    done, outcomes = run_sample(tmp_path, None)

    assert done.returncode == 0, done.stdout
    assert set(outcomes.values()) == {"skipped"}, outcomes


@pytest.mark.parametrize("value, on", [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False), (None, False)])
def test_ci_counts_as_on_for_true_or_1_only(monkeypatch, value, on):
    from tests.ci_services import ci_enabled

    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert ci_enabled() is on


def test_pytest_ini_loads_the_ci_services_plugin(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("tests.ci_services")
