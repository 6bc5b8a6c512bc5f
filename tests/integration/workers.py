"""Real Celery worker processes for integration tests (PostgreSQL + Redis).

Workers connect to the same test database as the test (committed data only, so
use transactional_db) and to a Redis broker named by CHRONOSX_TEST_REDIS_URL.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from tests.ci_services import service_missing  # fails instead of skipping under CI=true

ROOT = Path(__file__).resolve().parents[2]


def redis_url() -> str:
    """The test broker: a Redis database of this test process's own (pytest-xdist runs several)."""
    url = os.environ.get("CHRONOSX_TEST_REDIS_URL")
    if not url:
        service_missing("integration: needs Redis, CHRONOSX_TEST_REDIS_URL is not set (scripts/services-up prints it)")
    process = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    return f"{url.rstrip('/')}/{process + 1}"


def database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"] != "django.db.backends.postgresql":
        service_missing("integration: needs PostgreSQL (set DATABASE_URL)")
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def broker(settings, url=None):
    """Point this test process's Celery app at Redis (no eager mode) and empty the broker:
    the test Redis database of this process, or `url` (a private Redis, tests/integration/services.py)."""
    import redis

    from chronosx.celery import app

    url = url or redis_url()
    redis.Redis.from_url(url).flushdb()
    saved = dict(app.conf.broker_url and {"broker_url": app.conf.broker_url} or {})
    _reset_pools(app)
    app.conf.update(broker_url=url, task_always_eager=False)
    settings.CELERY_BROKER_URL = url
    settings.EMBEDDED_TASKS = False
    try:
        yield url
    finally:
        app.conf.update(task_always_eager=True, broker_url=saved.get("broker_url"))
        _reset_pools(app)


def _reset_pools(app):
    """Drop cached broker connections so the next send uses the current broker_url."""
    import kombu.pools

    kombu.pools.reset()  # kombu keeps producer pools in a global registry
    app._pool = None
    app.amqp._producer_pool = None


def process_env(**extra) -> dict:
    """This process's environment without what belongs to one process (a node's name and key
    folder, venue credentials) or to pytest, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHRONOSX_NODE", "PYTEST", "WEEX_"))}
    env.update(DJANGO_SETTINGS_MODULE="chronosx.settings", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def celery_worker_argv(*, queues, name, concurrency=1, options=()) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "chronosx", "worker",
        "-Q", ",".join(queues), "-n", f"{name}@%h", "--concurrency", str(concurrency),
        "--pool", "prefork", "--without-gossip", "--without-mingle", "-l", "INFO", *options,
    ]


# Every process spawn() started, so that reap() can end what a test left behind.
_spawned: list[subprocess.Popen] = []


def spawn(argv, *, env, log_path) -> subprocess.Popen:
    """Start `argv` in the project folder, output appended to `log_path`, in a process group of
    its own: a SIGKILL of the group reaches a Celery worker's pool children too. It inherits no
    descriptor of pytest's: a process left running must not hold the run's output open."""
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _spawned.append(proc)
    return proc


def reap() -> int:
    """SIGKILL the process group of every spawned process still running; how many there were.
    Called when the test session ends (tests/conftest.py): a test that failed or timed out
    half-way may have left a worker or a loop running, and it would run on after the suite."""
    alive = [proc for proc in _spawned if proc.poll() is None]
    for proc in alive:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    _spawned.clear()
    return len(alive)


def start_worker(*, queues, name, env=None, concurrency=1, log_dir=None, beat=False) -> subprocess.Popen:
    """Start `celery worker` as a separate process, with its own environment."""
    worker_env = process_env(DATABASE_URL=database_url(), CELERY_BROKER_URL=redis_url())
    worker_env.update(env or {})
    log_path = Path(log_dir or "/tmp") / f"worker-{name}.log"
    log_path.write_text("")
    beat_options = ["--beat", "--schedule", f"/tmp/celerybeat-{name}-{os.getpid()}"] if beat else []
    return spawn(
        celery_worker_argv(queues=queues, name=name, concurrency=concurrency, options=beat_options),
        env=worker_env,
        log_path=log_path,
    )


def stop_worker(proc: subprocess.Popen, sig=signal.SIGTERM, timeout=15):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate, timeout=30.0, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def log_tail(path, lines=40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return f"--- last {lines} lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


def manage(*args, env, timeout=180) -> str:
    """`python manage.py ARGS` in a process of its own with `env`; its output, or an AssertionError with it."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


class Supervised:
    """A process the test supervises as systemd would (Restart=always): started again once it
    is found dead. Records every pid it had, which of them the test killed and which died alone."""

    def __init__(self, name, argv, *, env, log_path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, Path(log_path)
        self.proc = None
        self.pids = []
        self.killed = 0  # SIGKILLed by the test
        self.unexpected_exits = []  # (pid, returncode) of exits the test did not cause

    def start(self):
        with open(self.log_path, "a") as log:
            log.write(f"=== supervisor: starting {self.name} ===\n")
        self.proc = spawn(self.argv, env=self.env, log_path=self.log_path)
        self.pids.append(self.proc.pid)
        return self.proc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL the whole process group (the worker and its pool children), then reap it."""
        if not self.alive():
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.killed += 1

    def check(self) -> bool:
        """Start it again if it died on its own; True when it had."""
        if self.proc is None or self.alive():
            return False
        self.unexpected_exits.append((self.proc.pid, self.proc.returncode))
        self.start()
        return True

    def stop(self, timeout=15):
        if self.proc is not None:
            stop_worker(self.proc, timeout=timeout)
