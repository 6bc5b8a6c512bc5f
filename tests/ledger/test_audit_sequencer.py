"""The sequencer loop (manage.py audit_sequencer) and the notification each linking round sends."""

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ledger import services
from ledger.models import AuditEvent
from ledger.services import AUDIT_CHAINED_CHANNEL, audit_chain_extend, audit_record, audit_sequencer_run


def test_a_round_of_the_sequencer_loop_links_what_has_been_committed(transactional_db):
    for n in range(3):
        audit_record(kind="test.append", actor="test", payload={"n": n})

    audit_sequencer_run(poll_seconds=0, rounds=1)

    assert list(AuditEvent.objects.order_by("id").values_list("seq", flat=True)) == [1, 2, 3]


def test_a_backlog_is_linked_in_full_rounds_one_after_another(transactional_db, monkeypatch):
    monkeypatch.setattr(services, "CHAIN_ROUND_LIMIT", 2)
    for n in range(5):
        audit_record(kind="test.append", actor="test", payload={"n": n})

    audit_sequencer_run(poll_seconds=0, rounds=1)  # rounds of 2, 2 and 1 in one poll

    assert list(AuditEvent.objects.order_by("id").values_list("seq", flat=True)) == [1, 2, 3, 4, 5]


def test_a_poll_that_finds_less_than_a_round_runs_one_round(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("the round's lock is PostgreSQL's")
    for n in range(3):
        audit_record(kind="test.append", actor="test", payload={"n": n})

    with CaptureQueriesContext(connection) as queries:
        audit_sequencer_run(poll_seconds=0, rounds=1)

    assert sum("pg_try_advisory_xact_lock" in q["sql"] for q in queries.captured_queries) == 1
    assert AuditEvent.objects.filter(hash__isnull=True).count() == 0


def test_a_round_that_links_notifies_the_last_seq_when_it_commits(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's")
    s = connection.settings_dict
    with psycopg.connect(dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"] or None,
                         port=s["PORT"] or None, autocommit=True) as listener:
        listener.execute(f"LISTEN {AUDIT_CHAINED_CHANNEL}")
        audit_record(kind="test.append", actor="test", payload={"n": 1})
        audit_record(kind="test.append", actor="test", payload={"n": 2})
        assert audit_chain_extend() == 2
        assert audit_chain_extend() == 0  # nothing linked: nothing sent

        sent = [n.payload for n in listener.notifies(timeout=1)]

    assert sent == ["2"]


def test_a_round_does_not_link_past_an_event_whose_transaction_is_still_open(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    s = connection.settings_dict
    with psycopg.connect(dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"] or None,
                         port=s["PORT"] or None) as other:
        table = AuditEvent._meta.db_table
        # Written first (the lower id) by a transaction that stays open…
        other.execute(
            f"INSERT INTO {table} (kind, actor, created_at, payload) VALUES ('test.open', 'test', now(), '{{}}')"
        )
        # …and a later event, committed.
        later = audit_record(kind="test.committed", actor="test", payload={})

        assert audit_chain_extend() == 0  # the later one waits for the open one
        other.commit()
        assert audit_chain_extend() == 2

    linked = list(AuditEvent.objects.order_by("seq").values_list("kind", "id"))
    assert [kind for kind, _ in linked] == ["test.open", "test.committed"]
    assert linked[1][1] == later.id


def test_a_round_reads_the_horizon_before_and_apart_from_the_events(transactional_db):
    """The events' read must take its snapshot after the horizon is known: a transaction ending in
    between would otherwise be below the horizon with its events not yet visible, and be overtaken."""
    if connection.vendor != "postgresql":
        pytest.skip("the horizon is PostgreSQL's")
    audit_record(kind="test.append", actor="test", payload={})

    with CaptureQueriesContext(connection) as queries:
        assert audit_chain_extend() == 1

    sqls = [q["sql"] for q in queries.captured_queries]
    horizon = next(i for i, sql in enumerate(sqls) if "pg_stat_activity" in sql)
    events = next(i for i, sql in enumerate(sqls) if "hash IS NULL" in sql)
    assert horizon < events and "pg_stat_activity" not in sqls[events]


@pytest.mark.parametrize(
    "next_id, xid, full",
    [
        (1_000, 900, 900),  # no wrap yet: the same
        (2**32 + 100, 50, 2**32 + 50),  # after the first wrap, in the current epoch
        (2**32 + 100, 2**32 - 10, 2**32 - 10),  # still running from before the wrap
        (3 * 2**32 + 7, 7, 3 * 2**32 + 7),
    ],
)
def test_a_running_transactions_id_is_widened_to_the_64_bits_an_events_txid_holds(db, next_id, xid, full):
    if connection.vendor != "postgresql":
        pytest.skip("the horizon is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + services.FULL_XID.format(next="%s::bigint", xid="%s::bigint"), [next_id, next_id, xid])
        assert cursor.fetchone()[0] == full
