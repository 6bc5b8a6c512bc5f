"""Fixtures shared by every test. Test data comes from tests/builders.py."""

import logging

import pgtrigger
import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import TransactionTestCase

from governance.services.controls import trading_enable
from tests.builders import client_for, make_agent, seed, staff_member

log = logging.getLogger(__name__)


@pytest.fixture(autouse=True, scope="session")
def _flush_past_append_only_triggers():
    """Transactional tests empty the database with TRUNCATE, which the append-only
    triggers refuse (as they should for the application); let only that flush through."""
    original = TransactionTestCase._fixture_teardown

    def teardown(self):
        with pgtrigger.ignore("ledger.AuditEvent:audit_event_no_truncate", "ledger.Fill:fill_no_truncate"):
            original(self)

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


@pytest.fixture(autouse=True)
def node_key_dir(tmp_path, settings):
    """Every test gets its own node key directory."""
    settings.CHRONOSX_NODE_KEY_DIR = tmp_path / "keys"
    return settings.CHRONOSX_NODE_KEY_DIR


@pytest.fixture(autouse=True)
def _two_factor_off(settings):
    """Two-factor is on by default wherever DATABASE_URL is set, as in the PostgreSQL test runs;
    tests log staff in with force_login, which gives no code. Tests of two-factor turn it on."""
    settings.CHRONOSX_REQUIRE_2FA = False


@pytest.fixture
def commits(db, monkeypatch):
    """Run on-commit callbacks when the application's outermost transaction ends, as a
    real commit would, although the test's own transaction (rolled back at its end) is
    still open. The pipeline enqueues each next stage on commit; with this, a test on
    the fast `db` fixture sees the same pipeline as production, without the cost of
    emptying the database after every test. Outside any application transaction a
    callback runs at once, as in autocommit."""
    base = len(connection.atomic_blocks)
    if base == 0:  # a transactional test: the database commits for real
        return
    original_exit, original_on_commit = transaction.Atomic.__exit__, BaseDatabaseWrapper.on_commit

    def run_pending(conn):
        while len(conn.atomic_blocks) == base and conn.run_on_commit:
            _, callback, robust = conn.run_on_commit.pop(0)
            try:
                callback()
            except Exception:
                if not robust:
                    raise
                log.exception("on-commit callback %s failed", callback)

    def exit_(self, exc_type, exc_value, traceback):
        result = original_exit(self, exc_type, exc_value, traceback)
        run_pending(transaction.get_connection(self.using))
        return result

    def on_commit(conn, func, robust=False):
        original_on_commit(conn, func, robust=robust)
        run_pending(conn)

    monkeypatch.setattr(transaction.Atomic, "__exit__", exit_)
    monkeypatch.setattr(BaseDatabaseWrapper, "on_commit", on_commit)


@pytest.fixture
def seeded(db, commits):
    seed()


@pytest.fixture
def trading_enabled(seeded):
    trading_enable(actor="test", reason="tests")


@pytest.fixture
def agent_token(seeded):
    return make_agent()


@pytest.fixture
def api(agent_token):
    """An API client authenticated as a fresh agent bound to `demo`."""
    client = client_for(agent_token[1])
    client.agent = agent_token[0]
    return client


@pytest.fixture
def other_api(seeded):
    """A second agent, bound only to strategy `other`."""
    agent, token = make_agent(("other",))
    client = client_for(token)
    client.agent = agent
    return client


@pytest.fixture
def staff_user(django_user_model, seeded):
    return django_user_model.objects.create_user(username="operator", password="op-pass-123", is_staff=True)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def login_as(client, seeded):
    """Log the test client in as a new staff member of a role: `login_as("operator")`; the
    user is on `client.user`. Named "superuser", a superuser."""

    def login(role, name=None):
        if role == "superuser":
            user = get_user_model().objects.create_superuser(name or "root", "root@example.com", None)
        else:
            user = staff_member(role, name)
        client.force_login(user)
        client.user = user
        return client

    return login
