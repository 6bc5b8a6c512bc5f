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

# Each process waits for a common start time, then appends as fast as it can: one
# event per transaction, and every third transaction two events.
APPEND_SCRIPT = """
import sys, time
import django
django.setup()
from django.db import transaction
from ledger.services import audit_record

name, start, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
while time.time() < start:
    time.sleep(0.002)
for i in range(rounds):
    with transaction.atomic():
        audit_record(kind="test.append", actor=name, payload={"i": i})
        if i % 3 == 0:
            audit_record(kind="test.append", actor=name, payload={"i": i, "second": True})
"""


def test_concurrent_appends_from_several_processes_leave_one_unbroken_chain(transactional_db):
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "chronosx.settings"}
    env.pop("CELERY_BROKER_URL", None)
    start = time.time() + 4  # after every interpreter has loaded Django
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND_SCRIPT, f"proc-{n}", str(start), str(ROUNDS)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(PROCESSES)
    ]
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
