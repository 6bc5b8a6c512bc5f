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
    app.conf.update(broker_url=url, task_always_eager=False)
    _reset_pools(app)
    settings.CELERY_BROKER_URL = url
    settings.EMBEDDED_TASKS = False
    try:
        yield url
    finally:
        app.conf.update(task_always_eager=True, broker_url=saved.get("broker_url"))
        _reset_pools(app)
        for key in _MIRRORED:
            app.conf.changes.pop(_celery_name(key), None)


# Celery 5.6 looks a setting up by its CELERY_ name in every source before its plain name, so
# the CELERY_* Django settings would hide the plain `app.conf.broker_url = …` a test sets (5.7
# reads the test's change first). _reset_pools, which every change of broker is followed by,
# copies these plain values to their CELERY_ names.
_MIRRORED = ("broker_url", "task_always_eager")


def _celery_name(key):
    return f"CELERY_{key.upper()}"


def _reset_pools(app):
    """Drop cached broker connections so the next send uses the current broker_url."""
    import kombu.pools

    for key in _MIRRORED:
        if key in app.conf.changes:
            app.conf.changes[_celery_name(key)] = app.conf.changes[key]
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
        "--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO", *options,
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
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


class Supervised:
    """A process the test supervises as systemd would (Restart=always): started again once it
    is found dead. Records every pid it had, which of them the test killed and which died alone."""

    def __init__(self, name, argv, *, env, log_path, ready_line=None):
        self.name, self.argv, self.env, self.log_path = name, argv, env, Path(log_path)
        self.ready_line = ready_line  # what the process logs once it is ready
        self.proc = None
        self.started_at = None
        self._log_offset = 0
        self.pids = []
        self.killed = 0  # SIGKILLed by the test
        self.unexpected_exits = []  # (pid, returncode, last log lines) of exits the test did not cause

    def start(self):
        with open(self.log_path, "a") as log:
            log.write(f"=== supervisor: starting {self.name} ===\n")
            self._log_offset = log.tell()
        self.proc = spawn(self.argv, env=self.env, log_path=self.log_path)
        self.started_at = time.monotonic()
        self.pids.append(self.proc.pid)
        return self.proc

    def uptime(self) -> float:
        return time.monotonic() - self.started_at if self.alive() else 0.0

    def ready(self) -> bool:
        """Alive, and (with a ready_line) has logged it since it was last started."""
        if not self.alive():
            return False
        if self.ready_line is None:
            return True
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return self.ready_line.encode() in log.read()

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
        """Start it again if it died on its own; True when it had. Its exit code and the end
        of what it logged are kept in unexpected_exits."""
        if self.proc is None or self.alive():
            return False
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            last_words = "\n".join(log.read().decode(errors="replace").splitlines()[-30:])
        self.unexpected_exits.append((self.proc.pid, self.proc.returncode, last_words))
        self.start()
        return True

    def stop(self, timeout=15):
        if self.proc is not None:
            stop_worker(self.proc, timeout=timeout)


def stop_all(processes, timeout=10):
    """SIGTERM every process group at once, SIGKILL what is left after `timeout`: nothing the
    test started outlives it, whatever state it is in."""
    running = [p for p in processes if p.proc is not None and p.proc.poll() is None]
    for process in running:
        try:
            os.killpg(process.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in running:
        if process.proc.poll() is None:  # still ours: the group id is this live leader's
            os.killpg(process.proc.pid, signal.SIGKILL)  # its pool children too
            process.proc.wait()
