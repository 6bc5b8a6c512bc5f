"""Private Redis and PostgreSQL instances for fault tests: each test owns its own server
process on a free loopback port and may stop and restart it, which it must never do to the
shared services other test runs use (scripts/services-up: Redis on 6379, cluster 15/main).

    with private_redis() as redis_server, private_postgres() as pg:
        ...  # redis_server.url, pg.url (role cx, password cx, database chaos)
        redis_server.restart()  # `redis-cli shutdown nosave`, then a fresh start on the same port
        pg.restart()  # pg_ctl -m fast stop, then start on the same port and data

Each is stopped and its files removed when the block ends. A missing binary, or no `postgres`
OS user to run PostgreSQL as (initdb refuses root), skips the test (fails it under CI=true).
"""

import glob
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.ci_services import service_missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout}s")


class PrivateRedis:
    """A redis-server child process without persistence: a restart loses every queued message,
    as `redis-cli shutdown nosave` on the production broker did."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = directory / "redis.log"
        self.process = None
        self.restarts = 0

    def _cli(self, *args, timeout=5):
        return subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def answers(self) -> bool:
        try:
            return self._cli("ping", timeout=2).stdout.strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def start(self):
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.directory)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait(self.answers, 15, f"private Redis on port {self.port}")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self._cli("shutdown", "nosave")
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, down_seconds: float = 1.0):
        """`shutdown nosave` (every client sees its connection closed), down a while, then a fresh start."""
        self.stop()
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1


@contextmanager
def private_redis():
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        service_missing("private Redis: redis-server/redis-cli not installed (scripts/services-up installs them)")
    directory = Path(tempfile.mkdtemp(prefix="chronosx-redis-"))
    server = PrivateRedis(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster run as the `postgres` OS user from a temporary folder,
    listening on 127.0.0.1:<port> and on a socket in that folder. Durability is off (fsync):
    it exists for one test. The role `cx` (password `cx`) owns the database `chaos`."""

    USER = PASSWORD = "cx"
    DATABASE = "chaos"

    def __init__(self, bindir: Path, directory: Path):
        self.bindir = bindir
        self.directory = directory
        self.data = directory / "data"
        self.log_path = directory / "postgres.log"
        self.port = free_port()
        self.url = f"postgres://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/{self.DATABASE}"
        self.restarts = 0

    def _as_postgres(self, *argv, timeout=60, check=True):
        command = " ".join(shlex.quote(str(a)) for a in argv)
        result = subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", f"cd / && {command}"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result

    def psql(self, sql, database="postgres"):
        return self._as_postgres(
            self.bindir / "psql", "-X", "-q", "-h", self.directory, "-p", self.port, "-U", "postgres",
            "-d", database, "-v", "ON_ERROR_STOP=1", "-c", sql,
        )

    def init(self):
        self._as_postgres(
            self.bindir / "initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256", timeout=120,
        )
        self.start()
        self.psql(f"CREATE ROLE {self.USER} LOGIN CREATEDB PASSWORD '{self.PASSWORD}'")
        self.psql(f"CREATE DATABASE {self.DATABASE} OWNER {self.USER}")

    def start(self):
        options = " ".join([
            f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.directory}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=200",
        ])
        self._as_postgres(self.bindir / "pg_ctl", "-D", self.data, "-l", self.log_path, "-o", options, "-w", "-t", "60",
                          "start", timeout=90)

    def stop(self, mode="fast"):
        self._as_postgres(self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop",
                          timeout=90, check=False)

    def restart(self, down_seconds: float = 1.0):
        """Fast stop (every session is terminated, open transactions roll back), down a while, start."""
        self.stop("fast")
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1


def _postgres_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@contextmanager
def private_postgres():
    bindir = _postgres_bindir()
    if bindir is None:
        service_missing("private PostgreSQL: no /usr/lib/postgresql/*/bin/initdb (scripts/services-up installs it)")
    if not shutil.which("su") or subprocess.run(["id", "-u", "postgres"], capture_output=True, check=False).returncode != 0:
        service_missing("private PostgreSQL: initdb must run as the postgres OS user, and there is none (or no su)")
    directory = Path(tempfile.mkdtemp(prefix="chronosx-pg-"))  # under /tmp: the postgres user can reach it
    shutil.chown(directory, user="postgres", group="postgres")
    os.chmod(directory, 0o700)
    server = PrivatePostgres(bindir, directory)
    try:
        try:
            server.init()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            log = server.log_path.read_text()[-2000:] if server.log_path.exists() else ""
            service_missing(f"private PostgreSQL could not be started: {exc}\n{log}")
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
