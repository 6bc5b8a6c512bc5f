"""The audit trail is tamper-evident: verify_audit passes after a full run, names the
first event a superuser rewrote behind the triggers' back, and the application's own
connection cannot rewrite audit or fill rows at all."""

import os
import shutil
import subprocess
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from governance.models import Proposal
from governance.services.controls import breaker_reset, breaker_trip, trading_halt
from governance.services.rulesets import ruleset_new_draft, ruleset_publish
from ledger.models import AuditEvent, Fill, RealizedPnl
from ledger.services import audit_chain_extend, audit_record
from tests.builders import Book, post_proposal, proposal_body
from tests.ci_services import service_missing  # fails instead of skipping under CI=true


def verify() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out, stderr=StringIO())
    return out.getvalue()


def verify_fails() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", stdout=StringIO(), stderr=StringIO())
    return str(failure.value)


@pytest.fixture
def full_run(api, trading_enabled):
    """Proposals of every outcome, a rule change and publish, orders and fills, breaker and halt."""
    for body in (proposal_body(), proposal_body(quantity="1000"), proposal_body(confidence=0.1)):
        assert post_proposal(api, body).status_code == 202
    current = ruleset_new_draft(source=None, actor="risk-officer")
    current.delete()  # a discarded draft: its creation stays on the record
    from governance.models import Ruleset

    published = Ruleset.objects.filter(status="published").order_by("-version").first()
    draft = ruleset_new_draft(source=published, actor="risk-officer")
    draft.mode = "full"
    draft.save()
    ruleset_publish(ruleset=draft, actor="risk-officer")

    book = Book(strategy="demo")
    for proposal in Proposal.objects.filter(status="approved"):
        order = book.order(side=proposal.side, quantity=proposal.decision.approved_quantity)
        book.buy(str(proposal.decision.approved_quantity), "65000", fee="0.01", order=order)
    book.close_sell("0.0005", "65100", fee="0.01")
    breaker_trip(name="venue_errors", actor="system", reason="test")
    breaker_reset(name="venue_errors", actor="operator:ann", reason="test")
    trading_halt(actor="operator:ann", reason="end of run")
    audit_chain_extend()  # the sequencer's round, as within a second in production
    return book


def test_verify_audit_passes_after_a_full_run(full_run):
    kinds = set(AuditEvent.objects.values_list("kind", flat=True))
    assert {
        "proposal.received", "decision.made", "proposal.status", "ruleset.draft_created", "ruleset.published",
        "fill.recorded", "breaker.tripped", "breaker.reset", "trading.enabled", "trading.halted", "agent.created",
    } <= kinds
    assert RealizedPnl.objects.count() == 1
    assert verify() == f"audit chain OK: {AuditEvent.objects.count()} events\n"


def test_verify_audit_on_an_empty_trail(db):
    assert verify() == "audit chain OK: 0 events\n"


# --- as the database superuser, triggers off -----------------------------------------


def superuser_sql(sql: str):
    """Run SQL as the PostgreSQL superuser, replication role set so no trigger fires."""
    url = os.environ.get("CHRONOSX_TEST_PG_SUPERUSER_URL")
    script = f"SET session_replication_role = replica;\n{sql};\n"
    if url:
        import psycopg

        with psycopg.connect(url, dbname=connection.settings_dict["NAME"], autocommit=True) as conn:
            for statement in script.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
        return
    if os.geteuid() != 0 or not shutil.which("su") or not shutil.which("psql"):
        service_missing("needs the PostgreSQL superuser: run as root (su postgres) or set CHRONOSX_TEST_PG_SUPERUSER_URL")
    done = subprocess.run(
        ["su", "postgres", "-c", f"psql -X -q -v ON_ERROR_STOP=1 -d {connection.settings_dict['NAME']}"],
        input=script, text=True, capture_output=True, timeout=30,
    )
    if done.returncode != 0:
        if "authentication" in done.stderr or "role" in done.stderr:
            service_missing(f"cannot connect as the PostgreSQL superuser: {done.stderr.strip()}")
        raise AssertionError(done.stderr)


def flip_first_char(column: str, at: int = 1) -> str:
    return (
        f"{column} = overlay({column} placing "
        f"(CASE WHEN substr({column}, {at}, 1) = 'x' THEN 'y' ELSE 'x' END) from {at} for 1)"
    )


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        service_missing("PostgreSQL only: SQLite has no triggers of this kind nor a superuser to bypass them")


@pytest.mark.integration
@pytest.mark.parametrize(
    "change",
    [
        flip_first_char("payload", at=3),  # one byte inside the JSON
        flip_first_char("actor"),
        flip_first_char("kind"),
        "created_at = created_at + interval '1 microsecond'",
        "proposal_id = gen_random_uuid()",
        flip_first_char("hash"),
    ],
    ids=["payload", "actor", "kind", "created_at", "proposal_id", "hash"],
)
def test_one_changed_byte_of_a_stored_event_makes_verify_audit_fail_naming_it(postgres_only, full_run, change):
    target = AuditEvent.objects.filter(kind="fill.recorded").order_by("seq")[1]
    before = AuditEvent.objects.get(seq=target.seq)
    superuser_sql(f"UPDATE ledger_auditevent SET {change} WHERE seq = {target.seq}")
    after = AuditEvent.objects.get(seq=target.seq)
    assert (after.payload, after.actor, after.kind, after.created_at, after.proposal_id, after.hash) != (
        before.payload, before.actor, before.kind, before.created_at, before.proposal_id, before.hash
    )

    error = verify_fails()
    assert error.startswith(f"audit chain broken at seq {target.seq} (kind {after.kind}): ")
    assert "altered" in error
    assert f"{target.seq - 1} events before it verify" in error


@pytest.mark.integration
def test_a_rewritten_prev_link_or_a_deleted_event_is_named(postgres_only, full_run):
    last = AuditEvent.objects.order_by("-seq").first()
    superuser_sql(f"UPDATE ledger_auditevent SET {flip_first_char('prev_hash')} WHERE seq = {last.seq}")
    assert verify_fails().startswith(f"audit chain broken at seq {last.seq} (kind {last.kind}): prev_hash does not match")

    superuser_sql("DELETE FROM ledger_auditevent WHERE seq = 5")
    error = verify_fails()
    assert error.startswith("audit chain broken at seq 6 ")
    assert "seq 6 where 5 was expected" in error


@pytest.mark.integration
def test_the_applications_own_connection_cannot_update_delete_or_truncate_audit_and_fill_rows(postgres_only, full_run):
    statements = [
        f"{verb.format(table=table)}"
        for table in ("ledger_auditevent", "ledger_fill")
        for verb in ("UPDATE {table} SET id = id", "DELETE FROM {table}", "TRUNCATE {table} CASCADE")
    ] + ["UPDATE ledger_realizedpnl SET amount = '0'", "DELETE FROM ledger_realizedpnl"]
    counts = (AuditEvent.objects.count(), Fill.objects.count(), RealizedPnl.objects.count())
    for statement in statements:
        with pytest.raises(DatabaseError, match="append-only table|is refused"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)
    assert (AuditEvent.objects.count(), Fill.objects.count(), RealizedPnl.objects.count()) == counts
    assert all(counts)


@pytest.mark.integration
def test_the_orm_and_the_pgtrigger_switch_cannot_rewrite_audit_rows_either(postgres_only, full_run):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(seq=1).update(actor="someone else")
    with pytest.raises(DatabaseError), transaction.atomic():
        Fill.objects.all().delete()
    # pgtrigger's own "ignore" switch is open to any session; the plain guard is not.
    with pytest.raises(DatabaseError, match="ledger_auditevent: UPDATE is refused"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [_all_pgtrigger_ids()])
            cursor.execute("UPDATE ledger_auditevent SET actor = 'someone else' WHERE seq = 1")
    # and the application's role may not switch triggers off the way a superuser can
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
    assert verify().startswith("audit chain OK")


def _all_pgtrigger_ids() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid IN ('ledger_auditevent'::regclass, 'ledger_fill'::regclass)"
        )
        names = [f"ledger_auditevent:{n}" for (n,) in cursor.fetchall()]
    return "{" + ",".join(names) + "}"


def test_an_event_stamped_on_a_whole_second_verifies(db, monkeypatch):
    """isoformat() drops a zero fraction; verification must render created_at the same way."""
    from datetime import datetime
    from datetime import timezone as dt_timezone

    from ledger import services

    stamps = iter([datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt_timezone.utc), datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=dt_timezone.utc)])
    monkeypatch.setattr(services.timezone, "now", lambda: next(stamps))
    services.audit_record(kind="test.whole_second", actor="test", payload={"n": 1})
    services.audit_record(kind="test.microsecond", actor="test", payload={"n": 2}, proposal_id="6F9619FF8B86D011B42D00C04FC964FF")
    assert verify() == "audit chain OK: 2 events\n"


def test_an_unchained_event_is_linked_once_and_its_content_never_changes(postgres_only, full_run):
    event = audit_record(kind="test.pending", actor="writer", payload={"n": 1})
    with pytest.raises(DatabaseError, match="Cannot update|is refused"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(actor="someone else")  # content, before linking
    with pytest.raises(DatabaseError, match="Cannot update|is refused"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(seq=10**9, prev_hash="0" * 64, hash="f" * 64, payload="{}")

    assert audit_chain_extend() == 1
    with pytest.raises(DatabaseError, match="Cannot update|is refused"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(hash="f" * 64)  # a link, once written
    with pytest.raises(DatabaseError, match="Cannot delete|is refused"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert verify().startswith("audit chain OK: ")
