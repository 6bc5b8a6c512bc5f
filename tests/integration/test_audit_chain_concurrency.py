"""Appends from several processes at once, while the sequencer that chains them is killed
and restarted, leave one unbroken chain: every event linked once, no gap, no fork, and each
writer's events in the order it wrote them."""

import json
import os
import signal
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command

from ledger.models import AuditEvent
from ledger.services import audit_chain_extend
from tests.integration.workers import database_url, log_tail, spawn, stop_worker

pytestmark = pytest.mark.integration

PROCESSES, ROUNDS = 6, 40

# The sequencer as a process of its own: a round every 20 ms, as beat would run it every second.
SEQUENCER_SCRIPT = """
import time
import django
django.setup()
from ledger.services import audit_chain_extend
while True:
    audit_chain_extend(limit=50)
    time.sleep(0.02)
"""

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


def start_sequencer(env, tmp_path):
    return spawn([sys.executable, "-c", SEQUENCER_SCRIPT], env=env, log_path=tmp_path / "sequencer.log")


def test_appends_from_six_processes_while_the_sequencer_is_killed_and_restarted_lose_and_reorder_nothing(
    transactional_db, tmp_path
):
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "chronosx.settings"}
    env.pop("CELERY_BROKER_URL", None)
    sequencer = start_sequencer(env, tmp_path)
    procs = [
        spawn(
            [sys.executable, "-c", APPEND_SCRIPT, f"proc-{n}", str(tmp_path), str(ROUNDS)],
            env=env, log_path=tmp_path / f"proc-{n}.log",
        )
        for n in range(PROCESSES)
    ]
    kills = 0
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("ready-*"))) < PROCESSES:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "append processes did not start"
            time.sleep(0.02)
        (tmp_path / "go").touch()
        while any(p.poll() is None for p in procs):
            time.sleep(0.15)
            os.killpg(sequencer.pid, signal.SIGKILL)  # mid-round, as often as not
            sequencer.wait()
            kills += 1
            sequencer = start_sequencer(env, tmp_path)
        for n, proc in enumerate(procs):
            assert proc.wait(timeout=120) == 0, log_tail(tmp_path / f"proc-{n}.log")
        time.sleep(1)
    finally:
        for proc in (sequencer, *procs):
            stop_worker(proc, signal.SIGKILL)
    while audit_chain_extend():  # whatever the last sequencer left, as the next one would
        pass

    per_process = ROUNDS + len(range(0, ROUNDS, 3))
    events = list(AuditEvent.objects.order_by("seq").values_list("seq", "actor", "prev_hash", "hash", "payload"))
    assert kills >= 3
    assert len(events) == PROCESSES * per_process and not AuditEvent.objects.filter(seq__isnull=True).exists()
    assert [seq for seq, *_ in events] == list(range(1, len(events) + 1))  # no gap, no repeat
    assert len({prev for _, _, prev, *_ in events}) == len(events)  # no two events share a parent: no fork
    for (_, _, _, parent, _), (_, _, prev, _, _) in zip(events, events[1:]):
        assert prev == parent
    for n in range(PROCESSES):  # each writer's events in the chain in the order it wrote them
        written = [json.loads(payload) for _, actor, _, _, payload in events if actor == f"proc-{n}"]
        assert [(e["i"], e.get("second", False)) for e in written] == sorted((e["i"], e.get("second", False)) for e in written)
    # the processes really did interleave
    switches = sum(1 for a, b in zip(events, events[1:]) if a[1] != b[1])
    assert switches > PROCESSES * 3

    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert out.getvalue() == f"audit chain OK: {len(events)} events\n"
