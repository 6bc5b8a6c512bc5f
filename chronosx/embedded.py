"""Embedded mode: with no broker, one process is every worker. The periodic jobs that
Celery beat runs in production, and every kind of worker's heartbeat, run on a daemon
thread inside the server process; the audit sequencer's loop on another.

It starts on the first request a process serves, however the app is served (`manage.py
runserver`, uvicorn, gunicorn): exactly once per process, and again in a process forked
from one that had it (threads do not survive a fork). The first round runs before that
request is handled, so the very first answer already sees live nodes.
"""

import logging
import os
import threading
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string

from chronosx import workers

log = logging.getLogger(__name__)
_lock = threading.Lock()
_started_in_pid = None


def _run(jobs):
    for dotted in jobs:
        try:
            import_string(dotted)()
        except Exception:
            log.exception("periodic job %s failed; it runs again next round", dotted)
        finally:
            close_old_connections()


def run_periodic_once():
    workers.beat_once(workers.registered_kinds())
    _run(settings.CELERY_BEAT_SCHEDULE_EMBEDDED_FAST + settings.CELERY_BEAT_SCHEDULE_EMBEDDED)


def _loop():
    """Every job at its own pace: the fast ones (the audit sequencer) every chain interval,
    the heartbeats and sweeps every sweep interval."""
    slow_due = time.monotonic() + settings.CHRONOSX_SWEEP_INTERVAL_SECONDS
    while True:
        time.sleep(settings.CHRONOSX_AUDIT_CHAIN_INTERVAL_SECONDS)
        if time.monotonic() >= slow_due:
            slow_due = time.monotonic() + settings.CHRONOSX_SWEEP_INTERVAL_SECONDS
            run_periodic_once()
        else:
            _run(settings.CELERY_BEAT_SCHEDULE_EMBEDDED_FAST)


def _sequence():
    """Events chained within tens of milliseconds of their commit, so that the event stream
    delivers them then, rather than at the loop's next round."""
    import_string(settings.CHRONOSX_EMBEDDED_SEQUENCER)(poll_seconds=settings.CHRONOSX_AUDIT_SEQUENCER_POLL_SECONDS)


def start_embedded_loop(**kwargs) -> bool:
    """Start the loop in this process if it is embedded and not running here yet. Returns whether it started."""
    global _started_in_pid
    if not (settings.EMBEDDED_TASKS and settings.CHRONOSX_EMBEDDED_LOOP) or _started_in_pid == os.getpid():
        return False
    with _lock:
        if _started_in_pid == os.getpid():
            return False
        _started_in_pid = os.getpid()
        workers.beat_once(workers.registered_kinds())
        threading.Thread(target=_loop, name="chronosx-embedded", daemon=True).start()
        threading.Thread(target=_sequence, name="chronosx-sequencer", daemon=True).start()
    log.info("embedded loop started in process %s: heartbeats, sweeper, reconciler, audit sequencer", os.getpid())
    return True
