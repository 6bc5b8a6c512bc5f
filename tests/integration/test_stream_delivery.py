"""The stream's fast path on real processes: uvicorn (the ASGI event tail, woken by the
sequencer's NOTIFY) and the audit sequencer, with no Celery beat at all. An event committed
by a business transaction reaches an open stream well within the second beat's round would
take, so the fast path, not the fallback, carried it."""

import socket
import statistics
import sys
import threading
import time

import pytest
import requests

from governance.selectors.events import chain_head_seq
from governance.services.agents import agent_create
from ledger.models import AuditEvent
from ledger.services import audit_record
from tests.builders import approved_proposal, make_agent, seed
from tests.integration.workers import database_url, log_tail, process_env, spawn, stop_worker, wait_for

pytestmark = pytest.mark.integration

EVENTS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamReader(threading.Thread):
    """Reads one SSE stream on a thread; every event id with the monotonic time it arrived."""

    def __init__(self, url, token, after):
        super().__init__(daemon=True)
        self.url, self.token, self.after = url, token, after
        self.opened, self.arrived = threading.Event(), {}

    def run(self):
        headers = {"Authorization": f"Token {self.token}", "Last-Event-ID": str(self.after), "Accept": "text/event-stream"}
        try:
            with requests.get(f"{self.url}/api/v1/stream/", headers=headers, stream=True, timeout=30) as response:
                for line in response.iter_lines(chunk_size=1, decode_unicode=True):
                    if line.startswith(": stream open"):
                        self.opened.set()
                    elif line.startswith("id: "):
                        self.arrived[int(line[4:])] = time.monotonic()
        except requests.RequestException:
            pass  # the server stops at the end of the test


def test_a_committed_event_reaches_an_open_stream_well_within_the_beat_interval(tmp_path):
    seed()
    agent, _ = make_agent(("demo",))
    _, staff_token = agent_create(name="risk-desk", strategy_slugs=["demo"], staff=True)
    proposal = approved_proposal(agent=agent)
    env = process_env(DATABASE_URL=database_url(), CHRONOSX_EMBEDDED_LOOP="0")
    env.pop("CELERY_BROKER_URL", None)
    port = free_port()
    web = spawn([sys.executable, "-m", "uvicorn", "chronosx.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "warning"], env=env, log_path=tmp_path / "web.log")
    sequencer = spawn([sys.executable, "manage.py", "audit_sequencer"], env=env, log_path=tmp_path / "sequencer.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), timeout=60, what=f"uvicorn\n{log_tail(tmp_path / 'web.log')}")
        wait_for(lambda: "polling every" in (tmp_path / "sequencer.log").read_text(), timeout=60, what="the sequencer")
        wait_for(lambda: chain_head_seq() > 0 and not _unchained(), timeout=10, what="the setup's events chained")
        reader = StreamReader(url, staff_token, after=chain_head_seq())
        reader.start()
        assert reader.opened.wait(30), log_tail(tmp_path / "web.log")

        delays = []
        for n in range(EVENTS):
            committed = time.monotonic()
            event = audit_record(kind="fill.recorded", actor="router", proposal_id=proposal.id, payload={"n": n})
            seq = wait_for(lambda: _seq_of(event.id), timeout=5, interval=0.005, what=f"event {n} chained")
            wait_for(lambda: seq in reader.arrived, timeout=5, interval=0.005, what=f"event {n} on the stream")
            delays.append(reader.arrived[seq] - committed)
    finally:
        for proc in (web, sequencer):
            stop_worker(proc)

    # Beat would link an event up to a second after its commit; the fast path takes tens of
    # milliseconds. The median keeps one event slowed by a busy machine from deciding it.
    assert statistics.median(delays) < 0.5, delays


def _answers(url) -> bool:
    try:
        return requests.get(f"{url}/api/v1/health/", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def _unchained() -> bool:
    return AuditEvent.objects.filter(seq__isnull=True).exists()


def _seq_of(event_id):
    return AuditEvent.objects.filter(id=event_id).values_list("seq", flat=True).first()


def test_a_crowd_of_streams_opening_at_once_stays_within_the_web_tier_s_pool(tmp_path):
    """Each stream's opening request reads the database for a moment, on a thread of its own:
    without the pool each such thread opened a connection of its own, and a few hundred at once
    ran PostgreSQL out of them. With it the web process holds at most its pool, plus the event
    tail's and the status poller's own connections."""
    from django.db import connection

    seed()
    _, staff_token = agent_create(name="risk-desk", strategy_slugs=["demo"], staff=True)
    env = process_env(DATABASE_URL=database_url(), CHRONOSX_EMBEDDED_LOOP="0", CHRONOSX_WEB_DB_POOL_SIZE="3")
    env.pop("CELERY_BROKER_URL", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = connection.settings_dict["NAME"]

    def connections_now() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database])
            return cursor.fetchone()[0]

    before = connections_now()
    web = spawn([sys.executable, "-m", "uvicorn", "chronosx.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "warning"], env=env, log_path=tmp_path / "web.log")
    readers = [StreamReader(url, staff_token, after=0) for _ in range(60)]
    most, done = [0], threading.Event()

    def watch():
        try:
            while not done.is_set():
                most[0] = max(most[0], connections_now() - before)
                time.sleep(0.01)
        finally:
            connection.close()  # this thread's own: left open, it outlives the test database

    try:
        wait_for(lambda: _answers(url), timeout=60, what=f"uvicorn\n{log_tail(tmp_path / 'web.log')}")
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for reader in readers:
            reader.start()
        opened = sum(reader.opened.wait(30) for reader in readers)
        done.set()
        watcher.join()
    finally:
        done.set()
        stop_worker(web)

    assert opened == len(readers), log_tail(tmp_path / "web.log")
    # The pool's 3, the event tail's reader and listener, and the watcher's own connection.
    assert most[0] <= 3 + 2 + 1, most[0]
