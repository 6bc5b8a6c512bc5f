"""scripts/up and scripts/down: the whole stack in one command, in a private prefix, on free
ports, with a database and a Redis database of its own (PostgreSQL and Redis themselves are the
machine's, and stay up). Through nginx over HTTPS a proposal goes all the way to a sandbox fill
with three signed votes; only nginx listens beyond loopback; a supervised process killed is
back within 10 s with nothing lost; a second scripts/up is harmless; scripts/down stops it all."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from tests.builders import proposal_body
from tests.integration.workers import database_url, redis_url, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FINAL = {"blocked", "expired", "filled", "rejected", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def others_can_run_this_python() -> bool:
    """Dedicated service users need an interpreter outside root's home (e.g. /usr/bin/python3)."""
    done = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", "import django"], capture_output=True)
    return done.returncode == 0


class Stack:
    def __init__(self, tmp_path):
        db, redis = urlparse(database_url()), urlparse(redis_url())
        self.prefix = tmp_path / "stack"
        self.https_port, self.http_port, self.app_port = free_port(), free_port(), free_port()
        self.pg_db = f"cx_stack_{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}"
        self.pg_port = db.port or 5432
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("CHRONOSX_", "DATABASE_", "CELERY_", "DJANGO_", "WEEX_", "PYTEST", "PROMETHEUS_"))}
        self.env.update(
            PATH=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin", PYTHON=sys.executable,
            CHRONOSX_PREFIX=str(self.prefix), CHRONOSX_SERVER_NAME="localhost",
            CHRONOSX_HTTP_PORT=str(self.http_port), CHRONOSX_HTTPS_PORT=str(self.https_port),
            CHRONOSX_APP_PORT=str(self.app_port), CHRONOSX_WEB_WORKERS="2",
            CHRONOSX_PG_DB=self.pg_db, CHRONOSX_PG_PORT=str(self.pg_port),
            CHRONOSX_REDIS_PORT=str(redis.port or 6379), CHRONOSX_REDIS_DB=str(int(redis.path.strip("/") or 0) + 10),
            CHRONOSX_SKIP_BOOTSTRAP="1", CHRONOSX_SUPERVISOR="supervisord", CHRONOSX_UP_WAIT_SECONDS="150",
        )
        if not others_can_run_this_python():
            self.env["CHRONOSX_USER"] = "root"
        self.url = f"https://localhost:{self.https_port}"
        self.cert = str(self.prefix / "tls/cert.pem")

    def script(self, *argv, timeout=420):
        """Run a script in a process group of its own: one that runs out of time is killed with
        everything it started (a `migrate` left behind held the next run's database)."""
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def manage(self, *args) -> str:
        done = self.script(str(self.prefix / "bin/manage"), *args, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def ctl(self, *args) -> str:
        done = self.script(sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.prefix / "etc/supervisord.conf"),
                           *args, timeout=60)
        return done.stdout

    def pid(self, program) -> int:
        return int(self.ctl("pid", f"chronosx:{program}").strip() or 0)

    def logs(self) -> str:
        out = []
        for path in sorted((self.prefix / "log").glob("*.log")):
            out.append(f"--- {path.name} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)

    def drop_database(self):
        subprocess.run(["su", "postgres", "-c", f"cd / && dropdb --if-exists -p {self.pg_port} {self.pg_db}"],
                       capture_output=True, timeout=60)


@pytest.fixture
def stack(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("scripts/up installs packages and users: root only")
    stack = Stack(tmp_path)
    stack.drop_database()
    try:
        yield stack
    finally:
        stack.script("scripts/down", timeout=120)
        stack.drop_database()


def post(stack, token, body=None):
    return requests.post(
        f"{stack.url}/api/v1/proposals/", json=body or proposal_body(), verify=stack.cert, timeout=30,
        headers={"Authorization": f"Token {token}", "Idempotency-Key": uuid.uuid4().hex},
    )


def final(stack, token, proposal_id, timeout=60.0) -> dict:
    def done():
        answer = requests.get(f"{stack.url}/api/v1/proposals/{proposal_id}/", verify=stack.cert, timeout=10,
                              headers={"Authorization": f"Token {token}"}).json()
        return answer if answer["status"] in FINAL else None

    return wait_for(done, timeout=timeout, interval=0.5, what=f"proposal {proposal_id} to be final")


def healthy(stack) -> bool:
    try:
        return requests.get(f"{stack.url}/api/v1/health/", verify=stack.cert, timeout=5).status_code == 200
    except requests.ConnectionError:  # nginx or the app still starting
        return False


def stack_listeners(stack) -> list[tuple[str, str]]:
    """(local address, program) of every TCP listener of the stack's processes."""
    groups = {}
    for path in (stack.prefix / "run/programs").glob("*.pgid"):
        groups[path.read_text().split()[0]] = path.stem
    found = []
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines():
        address = line.split()[3]
        for pid in re.findall(r"pid=(\d+)", line):
            try:
                pgid = str(os.getpgid(int(pid)))
            except ProcessLookupError:
                continue
            if pgid in groups:
                found.append((address, groups[pgid]))
    return found


@pytest.mark.timeout(900)  # two scripts/up runs (migrations, collectstatic, a certificate) on a busy CI machine
def test_the_stack_comes_up_serves_https_restarts_what_dies_and_stops(stack):
    # 1. One command.
    up = stack.script("scripts/up")
    assert up.returncode == 0, up.stderr[-3000:] + stack.logs()
    assert f"dashboard  {stack.url}/" in up.stdout and "staff add NAME --role risk_officer --password-file" in up.stdout

    # 2. Only nginx listens beyond loopback; the app on 127.0.0.1 alone.
    listeners = stack_listeners(stack)
    assert {program for _, program in listeners} >= {"nginx", "web"}
    beyond_loopback = {program for address, program in listeners if not address.startswith(("127.", "[::1]"))}
    assert beyond_loopback == {"nginx"}, listeners
    assert {address for address, program in listeners if program == "web"} == {f"127.0.0.1:{stack.app_port}"}

    # 3. Plain HTTP is redirected; /metrics is not reachable through nginx, only on loopback.
    redirect = requests.get(f"http://127.0.0.1:{stack.http_port}/api/v1/health/", allow_redirects=False, timeout=10)
    assert redirect.status_code == 301 and redirect.headers["Location"].startswith("https://")
    assert requests.get(f"{stack.url}/metrics", verify=stack.cert, timeout=10).status_code == 404
    health = requests.get(f"{stack.url}/api/v1/health/", verify=stack.cert, timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert "max-age=" in health.headers["Strict-Transport-Security"] and health.headers["X-Request-ID"]

    # 4. A proposal through nginx over HTTPS, to a sandbox fill with three signed votes.
    token = stack.manage("create_agent", f"stack-{uuid.uuid4().hex[:6]}", "--strategy", "demo").strip().splitlines()[-1]
    stack.manage("trading", "enable", "--reason", "stack test", "--user", "ops")
    accepted = post(stack, token)
    assert accepted.status_code == 202, accepted.text
    proposal = final(stack, token, accepted.json()["id"])
    assert proposal["status"] == "filled", proposal
    votes = proposal["quorum"]["votes"]
    assert sorted(v["node"] for v in votes) == ["execution", "portfolio", "risk"]
    assert all(v["verdict"] == "approve" and v["signature"] and v["key_id"] for v in votes)
    assert proposal["orders"][0]["venue"] == "sandbox" and proposal["orders"][0]["fills"]
    metrics = requests.get(f"http://127.0.0.1:{stack.app_port}/metrics", timeout=10).text
    assert re.search(r"^chronosx_proposals_total [1-9]", metrics, re.M), metrics
    assert 'chronosx_stage_seconds_count{stage="filled"}' in metrics
    # The stack's own settings pass the deployment checks.
    assert "no issues" in stack.manage("check", "--deploy", "--fail-level", "WARNING")
    # Verification reads the three nodes' signed checkpoints from the shared folder, not from
    # their key folders (a node signs within a minute of its first beat on a non-empty chain).
    wait_for(lambda: "checkpoints: 3 verified" in stack.manage("verify_audit"), timeout=90, interval=5,
             what="verify_audit to match the three nodes' checkpoints")

    # 5. Killed, each is back within 10 s (supervisord), and nothing is lost.
    for program in ("router", "node-risk", "governance", "web", "nginx"):
        old = stack.pid(program)
        os.kill(old, 9)
        started = time.monotonic()
        wait_for(lambda: stack.pid(program) not in (0, old), timeout=10, interval=0.2, what=f"{program} to restart")
        assert time.monotonic() - started < 10
    wait_for(lambda: healthy(stack), timeout=60, interval=1, what="the stack to be healthy again")
    ids = [post(stack, token).json()["id"] for _ in range(3)]
    assert [final(stack, token, i)["status"] for i in ids] == ["filled"] * 3

    # 6. A second run changes nothing that works.
    again = stack.script("scripts/up")
    assert again.returncode == 0, again.stderr[-3000:]
    assert final(stack, token, post(stack, token).json()["id"])["status"] == "filled"

    # 7. It stops cleanly; PostgreSQL and Redis stay up.
    supervisord = int((stack.prefix / "run/supervisord.pid").read_text())
    down = stack.script("scripts/down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert not Path(f"/proc/{supervisord}").exists()
    assert stack_listeners(stack) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.url}/api/v1/health/", verify=stack.cert, timeout=5)
    assert subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(stack.pg_port)]).returncode == 0
    redis_port = stack.env["CHRONOSX_REDIS_PORT"]
    assert subprocess.run(["redis-cli", "-p", redis_port, "ping"], capture_output=True, text=True).stdout.strip() == "PONG"
