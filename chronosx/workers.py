"""Worker heartbeats: every kind of process the pipeline needs beats while it runs.

A Celery worker's kinds are the queues it consumes (`governance`, `router`, and the node
queues `risk`, `portfolio`, `execution`); Celery beat is the `scheduler`. Each app
registers what a beat of its kinds does (governance/tasks.py, exchange/tasks.py): record
the heartbeat, and for the router also probe the venue it alone holds credentials for.
A daemon thread in the worker's main process runs those beats every few seconds; in the
embedded default the embedded loop runs every kind's beat (chronosx/embedded.py).
"""

import logging
import threading

from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import beat_init, worker_ready, worker_shutdown
from django.db import close_old_connections, connections

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 3
SCHEDULER = "scheduler"

_beats: dict[str, list] = {}
_stop = threading.Event()


def on_beat(kind: str):
    """Register `function()` to run on every heartbeat of a process of `kind`."""

    def register(function):
        _beats.setdefault(kind, []).append(function)
        return function

    return register


def registered_kinds() -> list[str]:
    return sorted(_beats)


def beat_once(kinds) -> None:
    for kind in kinds:
        for function in _beats.get(kind, ()):
            try:
                function()
            except Exception:
                log.exception("heartbeat of %s failed; it is tried again in %s s", kind, INTERVAL_SECONDS)


def _loop(kinds, forks: bool):
    while not _stop.is_set():
        if not forks:
            close_old_connections()  # as around a request: one past its age, or broken, is replaced
        beat_once(kinds)
        if forks:
            # A prefork pool forks from this process when it replaces a child, and a child must
            # not inherit an open connection (its copy, when collected, would end the session).
            connections.close_all()
        _stop.wait(INTERVAL_SECONDS)
    connections.close_all()


def start_beating(kinds, *, forks: bool = False) -> threading.Thread | None:
    """Beat as `kinds` on a thread of this process. `forks`: the process forks (a prefork pool's
    parent), so no connection is kept between beats. Otherwise the thread keeps its connection: a
    new one every beat (authentication, a server process, Django's set-up) doubled the thread's
    CPU, and cost PostgreSQL a server process every 3 s."""
    kinds = [kind for kind in kinds if kind in _beats]
    if not kinds:
        return None
    _stop.clear()
    log.info("heartbeats every %s s as %s", INTERVAL_SECONDS, ", ".join(kinds))
    thread = threading.Thread(target=_loop, args=(kinds, forks), name="chronosx-heartbeat", daemon=True)
    thread.start()
    return thread


@worker_ready.connect
def _worker_ready(sender=None, **kwargs):
    queues = sender.app.amqp.queues.consume_from or {}
    start_beating(sorted(queues), forks=isinstance(sender.pool, PreforkPool))


@beat_init.connect
def _beat_ready(sender=None, **kwargs):
    start_beating([SCHEDULER])


@worker_shutdown.connect
def _worker_shutdown(sender=None, **kwargs):
    _stop.set()
