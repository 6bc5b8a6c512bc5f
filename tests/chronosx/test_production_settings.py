"""The production settings: no start without a secret key, and `check --deploy` clean with the
environment the stack runs with (scripts/up writes it to PREFIX/etc/chronosx.env)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def stack_env(tmp_path, **overrides) -> dict:
    """What scripts/up puts in chronosx.env (no database is reached by these commands)."""
    secret = tmp_path / "django_secret_key"
    secret.write_text(secrets.token_urlsafe(64) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHRONOSX_", "DATABASE_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="chronosx.settings",
        DATABASE_URL="postgres://cx_app:cx_app@127.0.0.1:5432/chronosx",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        DJANGO_SECRET_KEY_FILE=str(secret),
        DJANGO_ALLOWED_HOSTS="chronosx.example.org,127.0.0.1,localhost",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://chronosx.example.org",
        CHRONOSX_TLS="1",
        CHRONOSX_LOG_FORMAT="json",
        CHRONOSX_VAR_DIR=str(tmp_path),
        CHRONOSX_SERVE_STATIC="0",
        CHRONOSX_EMBEDDED_LOOP="0",
    )
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_prints_no_warning_with_the_stack_s_settings(tmp_path):
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=stack_env(tmp_path))

    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout
    assert "WARNINGS" not in done.stdout + done.stderr


def test_check_deploy_names_the_warnings_the_stack_s_settings_silence_without_tls(tmp_path):
    # The same environment without CHRONOSX_TLS: the four warnings of the issue come back,
    # so the clean result above is the TLS switch's doing.
    done = manage("check", "--deploy", env=stack_env(tmp_path, CHRONOSX_TLS=None))

    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr + done.stdout


@pytest.mark.parametrize(
    "switch",
    [{"DATABASE_URL": "postgres://cx:cx@127.0.0.1:5432/cx"}, {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}, {"CHRONOSX_TLS": "1"}],
    ids=["database", "broker", "tls"],
)
def test_it_refuses_to_start_without_a_secret_key_off_the_embedded_default(tmp_path, switch):
    env = stack_env(tmp_path, DJANGO_SECRET_KEY_FILE=None, DATABASE_URL=None, CELERY_BROKER_URL=None, CHRONOSX_TLS=None)
    env.update(switch)

    done = manage("check", env=env)

    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set" in done.stderr


def test_a_secret_file_that_cannot_be_read_is_named(tmp_path):
    missing = tmp_path / "no-such-secret"
    done = manage("check", env=stack_env(tmp_path, DJANGO_SECRET_KEY_FILE=str(missing)))

    assert done.returncode != 0
    assert f"DJANGO_SECRET_KEY_FILE={missing} cannot be read" in done.stderr


def test_a_systemd_credential_holds_the_secret_key(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "django_secret_key").write_text(secrets.token_urlsafe(64))
    env = stack_env(tmp_path, DJANGO_SECRET_KEY_FILE=None, CREDENTIALS_DIRECTORY=str(credentials))

    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert done.returncode == 0, done.stderr


def test_the_embedded_default_still_starts_with_no_variable_set(tmp_path):
    env = stack_env(tmp_path, DJANGO_SECRET_KEY_FILE=None, DATABASE_URL=None, CELERY_BROKER_URL=None, CHRONOSX_TLS=None,
                    CHRONOSX_LOG_FORMAT=None, CHRONOSX_SERVE_STATIC=None, DJANGO_ALLOWED_HOSTS=None, DJANGO_CSRF_TRUSTED_ORIGINS=None)

    done = manage("check", env=env)

    assert done.returncode == 0, done.stderr


def test_the_web_tier_lends_connections_from_a_bounded_pool_and_workers_keep_theirs(tmp_path):
    show = (
        "import django, json; django.setup(); from django.conf import settings; d = settings.DATABASES['default'];"
        "print(json.dumps([d['CONN_MAX_AGE'], d.get('OPTIONS', {}).get('pool', {}).get('max_size')]))"
    )
    web = subprocess.run(
        [sys.executable, "-c", "import chronosx.asgi; " + show], cwd=ROOT, env=stack_env(tmp_path),
        capture_output=True, text=True, timeout=120,
    )
    worker = subprocess.run(
        [sys.executable, "-c", show], cwd=ROOT, env=stack_env(tmp_path), capture_output=True, text=True, timeout=120
    )

    assert web.stdout.split() == ["[0,", "16]"], web.stderr
    assert worker.stdout.split() == ["[300,", "null]"], worker.stderr


def test_web_and_worker_processes_leave_what_they_loaded_out_of_full_collections(tmp_path):
    # A full pass over everything Django, DRF and the app loaded paused a POST for 76 ms.
    web = subprocess.run(
        [sys.executable, "-c", "import gc, chronosx.asgi; print(gc.get_freeze_count())"],
        cwd=ROOT, env=stack_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    started = (
        "import gc, django; django.setup(); from celery.signals import worker_process_init, worker_ready;"
        "import chronosx.celery; print(gc.get_freeze_count());"
        "worker_ready.send(sender=None); print(gc.get_freeze_count()); gc.unfreeze();"
        "worker_process_init.send(sender=None); print(gc.get_freeze_count())"
    )
    worker = subprocess.run(
        [sys.executable, "-c", started], cwd=ROOT, env=stack_env(tmp_path), capture_output=True, text=True, timeout=120
    )

    assert int(web.stdout) > 10_000, web.stderr
    before, ready, child = map(int, worker.stdout.split())
    assert before == 0 and ready > 10_000 and child > 10_000, worker.stderr


def test_threads_share_one_redis_pool_and_one_celery_result_backend():
    """The web tier runs each request on a new thread: what a thread makes for itself, every request makes again."""
    import threading

    from chronosx.cache import SharedPoolRedisCache
    from chronosx.celery import app

    seen = []

    def look():
        cache = SharedPoolRedisCache("redis://127.0.0.1:6379/9", {})  # a pool connects lazily: no server needed
        seen.append((cache._cache._get_connection_pool(write=True), app.backend))

    for _ in range(2):  # one after the other, as requests' threads come and go
        thread = threading.Thread(target=look)
        thread.start()
        thread.join()

    assert seen[0][0] is seen[1][0]
    assert seen[0][1] is seen[1][1]


def test_with_the_database_unreachable_the_web_tier_answers_503_within_its_pool_timeout(tmp_path):
    import socket
    import time

    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = stack_env(
        tmp_path, DATABASE_URL="postgres://cx_app:cx_app@127.0.0.1:9/chronosx",  # nothing listens on port 9
        CHRONOSX_TLS=None, CHRONOSX_DB_POOL_TIMEOUT_SECONDS="0.5",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "chronosx.asgi:application", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                started = time.monotonic()
                answer = requests.post(
                    f"http://127.0.0.1:{port}/api/v1/proposals/", json={}, timeout=10,
                    headers={"Authorization": "Token cx_x", "Idempotency-Key": "k1"},
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        took = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=20)

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"
    assert answer.headers["Retry-After"]
    assert took < 5
