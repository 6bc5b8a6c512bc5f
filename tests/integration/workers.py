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
def broker(settings):
    """Point this test process's Celery app at Redis (no eager mode) and empty the broker."""
    import redis

    from chronosx.celery import app

    url = redis_url()
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


def start_worker(*, queues, name, env=None, concurrency=1, log_dir=None, beat=False) -> subprocess.Popen:
    """Start `celery worker` as a separate process, with its own environment."""
    worker_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHRONOSX_NODE", "PYTEST", "WEEX_"))
    }
    worker_env.update(
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=redis_url(),
        DJANGO_SETTINGS_MODULE="chronosx.settings",
        PYTHONUNBUFFERED="1",
    )
    worker_env.update(env or {})
    log = open(Path(log_dir or "/tmp") / f"worker-{name}.log", "w")
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "chronosx", "worker",
            "-Q", ",".join(queues), "-n", f"{name}@%h", "--concurrency", str(concurrency),
            "--pool", "prefork", "--without-gossip", "--without-mingle", "-l", "INFO",
            *(["--beat", "--schedule", f"/tmp/celerybeat-{name}-{os.getpid()}"] if beat else []),
        ],
        cwd=ROOT,
        env=worker_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: SIGKILL reaches the pool children too
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
