"""A Celery worker keeps its PostgreSQL connection from one task to the next, as a web request
does, and still replaces one the server has dropped before a task fails on it.

Celery's Django fixup and chronosx/celery.py's handlers are installed here as a worker installs
them as it starts, and a task's start and end are their two signals."""

import time
from types import SimpleNamespace

import psycopg
import pytest
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.solo import TaskPool as SoloPool
from celery.concurrency.thread import TaskPool as ThreadPool
from celery.fixups.django import DjangoWorkerFixup
from celery.signals import task_postrun, task_prerun
from django.db import connection

from chronosx import workers
from chronosx.celery import _connections_as_around_a_request, app, connections_kept_between_tasks

pytestmark = pytest.mark.django_db(transaction=True)  # a worker's tasks run in autocommit


@pytest.fixture
def worker_fixup():
    if connection.vendor != "postgresql":
        pytest.skip("the embedded default (SQLite) runs no worker")
    fixup = DjangoWorkerFixup(app).install()
    connections_kept_between_tasks()
    yield
    for signal in (task_prerun, task_postrun):
        signal.disconnect(_connections_as_around_a_request)
    task_prerun.disconnect(fixup.on_task_prerun)
    task_postrun.disconnect(fixup.on_task_postrun)


def a_task_runs() -> int:
    """One task's signals around one query: the server process that answered it."""
    task = app.tasks["governance.vote"]  # not run: only the sender of the signals
    task_prerun.send(sender=task, task_id="t", task=task, args=(), kwargs={})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    task_postrun.send(sender=task, task_id="t", task=task, args=(), kwargs={}, retval=None, state="SUCCESS")
    return backend


def test_a_worker_keeps_its_connection_from_one_task_to_the_next(worker_fixup):
    first = a_task_runs()
    assert [a_task_runs() for _ in range(3)] == [first] * 3


def test_a_connection_the_server_dropped_is_replaced_before_the_next_task_uses_it(worker_fixup):
    dropped = a_task_runs()
    settings = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in settings.items() if k != "cursor_factory"}, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [dropped])
    replaced = a_task_runs()  # no OperationalError: checked at the task's first query, and reconnected
    assert replaced != dropped
    assert a_task_runs() == replaced


@pytest.fixture
def beats(monkeypatch):
    """A heartbeat kind whose beat records the server process that answered it."""
    if connection.vendor != "postgresql":
        pytest.skip("the embedded default (SQLite) runs no worker")
    backends = []

    def beat():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backends.append(cursor.fetchone()[0])

    monkeypatch.setitem(workers._beats, "test-kind", [beat])
    monkeypatch.setattr(workers, "INTERVAL_SECONDS", 0.02)
    yield backends
    workers._stop.set()


def beaten(thread, backends, times=4) -> list[int]:
    deadline = time.monotonic() + 10
    while len(backends) < times and time.monotonic() < deadline:
        time.sleep(0.01)
    workers._stop.set()
    thread.join(timeout=10)  # it closes its connection as it ends
    return backends[:times]


def test_the_heartbeat_of_a_worker_that_does_not_fork_keeps_its_connection(beats):
    first, *rest = beaten(workers.start_beating(["test-kind"], forks=False), beats)
    assert rest == [first] * 3


def test_the_heartbeat_of_a_prefork_worker_keeps_no_connection_between_beats(beats):
    backends = beaten(workers.start_beating(["test-kind"], forks=True), beats)
    assert len(set(backends)) == 4  # closed after each beat: a forked child inherits none


@pytest.mark.parametrize(
    "pool, forks", [(PreforkPool, True), (SoloPool, False), (ThreadPool, False)], ids=["prefork", "solo", "threads"]
)
def test_a_worker_beats_as_its_queues_and_says_whether_its_pool_forks(monkeypatch, pool, forks):
    started = []
    monkeypatch.setattr(workers, "start_beating", lambda kinds, *, forks: started.append((kinds, forks)))
    consumer = SimpleNamespace(
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from={"risk": None}))),
        pool=object.__new__(pool),  # its kind is all that is asked
    )

    workers._worker_ready(sender=consumer)

    assert started == [(["risk"], forks)]
