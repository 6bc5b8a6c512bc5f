"""The runtime role (what `scripts/services-up` grants the application) reads and writes rows
but cannot disable, drop or bypass the append-only triggers; the owner role, which runs the
migrations, can (docs/database-roles.md).

Each test creates its own runtime role in the cluster (a unique name: the test processes share
the cluster, each with its own test database), grants it exactly what services-up grants, and
drops it at the end.
"""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection, transaction

from tests.ci_services import service_missing  # fails instead of skipping under CI=true

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MUST_BE_OWNER = "must be owner of (table|relation) ledger_auditevent"


def as_superuser(sql: str) -> None:
    """Run SQL in the test database as the PostgreSQL superuser."""
    settings = connection.settings_dict
    url = os.environ.get("CHRONOSX_TEST_PG_SUPERUSER_URL")
    if url:
        with psycopg.connect(url, dbname=settings["NAME"], autocommit=True) as conn:
            conn.execute(sql)  # several statements: no parameters, one implicit transaction
        return
    if os.geteuid() != 0 or not shutil.which("su") or not shutil.which("psql"):
        service_missing("needs the PostgreSQL superuser: run as root (su postgres) or set CHRONOSX_TEST_PG_SUPERUSER_URL")
    port = f"-p {settings['PORT']} " if settings["PORT"] else ""
    done = subprocess.run(
        ["su", "postgres", "-c", f"cd / && psql -X -q -v ON_ERROR_STOP=1 -1 {port}-d {settings['NAME']}"],
        input=sql, text=True, capture_output=True, timeout=30, check=False,
    )
    if done.returncode != 0:
        if "connection to server" in done.stderr:
            service_missing(f"cannot connect as the PostgreSQL superuser: {done.stderr.strip()}")
        raise AssertionError(done.stderr)


def services_up_grants(*, role: str) -> str:
    """The SQL services-up runs to give its runtime role its privileges, for this test database."""
    settings = connection.settings_dict
    done = subprocess.run(
        [str(ROOT / "scripts" / "services-up"), "--runtime-grants-sql"],
        env=os.environ | {
            "CHRONOSX_PG_USER": settings["USER"],
            "CHRONOSX_PG_DB": settings["NAME"],
            "CHRONOSX_PG_RUNTIME_USER": role,
        },
        text=True, capture_output=True, timeout=30, check=True,
    )
    return done.stdout


def audit_triggers(cursor) -> dict[str, str]:
    """The user triggers on the audit table, by name, with pg_trigger's enabled flag ('O': on)."""
    cursor.execute(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'ledger_auditevent'::regclass AND NOT tgisinternal"
    )
    return {name: enabled for name, enabled in cursor.fetchall()}


def attempt(conn: psycopg.Connection, statement: str) -> None:
    """Run one statement in a transaction that is rolled back whatever happens: a statement
    that should have been refused and was not leaves nothing behind for the next test."""
    with conn.transaction(force_rollback=True):
        conn.execute(statement)


@pytest.fixture
def postgresql(transactional_db):
    if connection.vendor != "postgresql":
        service_missing("PostgreSQL only: SQLite has neither roles nor triggers of this kind")


@pytest.fixture
def runtime(postgresql):
    """A connection to the test database as a fresh runtime role (autocommit)."""
    role = f"cx_runtime_{uuid.uuid4().hex[:16]}"
    password = uuid.uuid4().hex
    grants = services_up_grants(role=role)
    as_superuser(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        as_superuser(grants)
        settings = connection.settings_dict
        with psycopg.connect(
            host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432, dbname=settings["NAME"],
            user=role, password=password, autocommit=True, connect_timeout=10,
        ) as conn:
            yield conn
    finally:
        # DROP OWNED revokes its privileges here, CONNECT on the database and the default
        # privileges included; nothing else in the cluster refers to the role.
        as_superuser(f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.fixture
def triggers(postgresql):
    """The audit table's triggers, all on, with the append-only guards among them."""
    with connection.cursor() as cursor:
        found = audit_triggers(cursor)
    # pgtrigger's: no DELETE, no TRUNCATE, an UPDATE only to link an unchained event; and the
    # sequencer's own link-once guard (ledger migration 0005).
    assert any(name.startswith("pgtrigger_audit_event_no_delete") for name in found), found
    assert any(name.startswith("pgtrigger_audit_event_linked_once") for name in found), found
    assert "ledger_auditevent_link_once" in found, found
    assert set(found.values()) == {"O"}, found
    return found


def test_the_runtime_role_can_insert_and_select_audit_events(runtime):
    row = runtime.execute(
        "INSERT INTO ledger_auditevent (seq, kind, actor, created_at, payload, prev_hash, hash) "
        "VALUES (1, 'test.runtime_role', 'runtime', now(), '{}', repeat('0', 64), repeat('1', 64)) RETURNING id"
    ).fetchone()

    assert runtime.execute("SELECT seq, kind FROM ledger_auditevent WHERE id = %s", row).fetchall() == [
        (1, "test.runtime_role")
    ]


def test_the_runtime_role_cannot_disable_the_audit_triggers(runtime, triggers):
    for statement in (
        "ALTER TABLE ledger_auditevent DISABLE TRIGGER USER",
        "ALTER TABLE ledger_auditevent DISABLE TRIGGER ALL",
        *(f'ALTER TABLE ledger_auditevent DISABLE TRIGGER "{name}"' for name in triggers),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=MUST_BE_OWNER):
            attempt(runtime, statement)

    with connection.cursor() as cursor:
        assert audit_triggers(cursor) == triggers


def test_the_runtime_role_cannot_drop_the_audit_triggers(runtime, triggers):
    for name in triggers:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=MUST_BE_OWNER):
            attempt(runtime, f'DROP TRIGGER "{name}" ON ledger_auditevent')

    with connection.cursor() as cursor:
        assert audit_triggers(cursor) == triggers


def test_the_runtime_role_cannot_truncate_the_audit_trail(runtime):
    # Refused for want of the privilege, before the TRUNCATE trigger would have a say.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table ledger_auditevent"):
        attempt(runtime, "TRUNCATE ledger_auditevent")


def test_the_runtime_role_cannot_switch_triggers_off_for_its_session(runtime):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="session_replication_role"):
        attempt(runtime, "SET session_replication_role = replica")


def test_the_owner_role_can_disable_and_drop_the_audit_triggers_which_is_why_the_app_must_not_be_it(triggers):
    """The control: the suite's own connection is the owner, and the same statements pass."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'ledger_auditevent'")
        assert cursor.fetchone() == (connection.settings_dict["USER"],)

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ledger_auditevent DISABLE TRIGGER USER")
        assert set(audit_triggers(cursor).values()) == {"D"}
        for name in triggers:
            cursor.execute(f'DROP TRIGGER "{name}" ON ledger_auditevent')
        assert audit_triggers(cursor) == {}
        transaction.set_rollback(True)

    with connection.cursor() as cursor:
        assert audit_triggers(cursor) == triggers


def test_tables_the_owner_creates_later_are_open_to_the_runtime_role_for_rows_only(runtime):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE roles_probe (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, note text)")
    try:
        runtime.execute("INSERT INTO roles_probe (note) VALUES ('from the runtime role')")
        assert runtime.execute("SELECT note FROM roles_probe").fetchall() == [("from the runtime role",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table roles_probe"):
            attempt(runtime, "TRUNCATE roles_probe")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of table roles_probe"):
            attempt(runtime, "DROP TABLE roles_probe")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE roles_probe")
