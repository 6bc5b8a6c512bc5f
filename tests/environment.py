"""Loaded before Django (pytest.ini: -p tests.environment): what every test run's
settings need from the environment. Settings refuse the public built-in secret key
whenever DATABASE_URL is set (a PostgreSQL stack), the test database included; and
the embedded loop (chronosx/embedded.py) must not start on a test client's request and
run sweeps on a thread of its own: tests run those jobs themselves, when they mean to."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-never-used-outside-the-test-run")
os.environ.setdefault("CHRONOSX_EMBEDDED_LOOP", "0")
