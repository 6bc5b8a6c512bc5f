"""Appends from several processes at once leave one unbroken chain: no gap, no fork."""

import os
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command

from ledger.models import AuditEvent
from tests.integration.workers import ROOT, database_url

pytestmark = pytest.mark.integration

PROCESSES, ROUNDS = 6, 40

# Each process loads Django, says it is ready, waits for the common "go", then
# appends as fast as it can: one event per transaction, every third transaction two.
APPEND_SCRIPT = """
import sys, time
from pathlib import Path
import django
django.setup()
from django.db import connection, transaction
from ledger.services import audit_record

name, barrier, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
connection.ensure_connection()
(barrier / f"ready-{name}").touch()
while not (barrier / "go").exists():
    time.sleep(0.002)
for i in range(rounds):
    with transaction.atomic():
        audit_record(kind="test.append", actor=name, payload={"i": i})
        if i % 3 == 0:
            audit_record(kind="test.append", actor=name, payload={"i": i, "second": True})
"""


def test_concurrent_appends_from_several_processes_leave_one_unbroken_chain(transactional_db, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "chronosx.settings"}
    env.pop("CELERY_BROKER_URL", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND_SCRIPT, f"proc-{n}", str(tmp_path), str(ROUNDS)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(PROCESSES)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < PROCESSES:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "append processes did not start"
        time.sleep(0.02)
    (tmp_path / "go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    per_process = ROUNDS + len(range(0, ROUNDS, 3))
    events = list(AuditEvent.objects.order_by("seq").values_list("seq", "actor", "prev_hash", "hash"))
    assert len(events) == PROCESSES * per_process
    assert [seq for seq, *_ in events] == list(range(1, len(events) + 1))  # no gap, no repeat
    assert len({prev for _, _, prev, _ in events}) == len(events)  # no two events share a parent: no fork
    for (_, _, _, parent), (_, _, prev, _) in zip(events, events[1:]):
        assert prev == parent
    # the processes really did interleave, so the lock was contended
    switches = sum(1 for a, b in zip(events, events[1:]) if a[1] != b[1])
    assert switches > PROCESSES * 3

    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert out.getvalue() == f"audit chain OK: {len(events)} events\n"
