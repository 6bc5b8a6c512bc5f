"""Embedded mode: with no broker, the periodic jobs that Celery beat runs in
production run on a daemon thread inside the server process."""

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)
_started = threading.Event()


def run_periodic_once():
    for dotted in settings.CELERY_BEAT_SCHEDULE_EMBEDDED:
        try:
            import_string(dotted)()
        except Exception:
            log.exception("periodic job %s failed; it runs again next round", dotted)
        finally:
            close_old_connections()


def _loop():
    while True:
        run_periodic_once()
        time.sleep(settings.CHRONOSX_SWEEP_INTERVAL_SECONDS)


def start_embedded_loop():
    if _started.is_set() or not settings.EMBEDDED_TASKS:
        return
    _started.set()
    threading.Thread(target=_loop, name="chronosx-embedded", daemon=True).start()
