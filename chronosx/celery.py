import gc
import os
import sys

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init, worker_ready
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")

app = Celery("chronosx")
app.config_from_object("django.conf:settings", namespace="CELERY")
# One result backend object per process, not one per thread: the web tier sends tasks from a
# new thread per request, and making the backend again scanned the installed packages' entry
# points on every POST (about a tenth of the web tier's CPU). Celery reads this key as it makes
# the backend, but it is not one of its named settings, so the CELERY_ namespace cannot set it.
app.conf.result_backend_thread_safe = True
# Celery's Django fixup closes every database connection before and after each task unless
# this key is set (since celery 5.6, whatever CONN_MAX_AGE says): each vote and each route
# opened a PostgreSQL connection, its authentication and a new server process included. The
# handlers below treat connections as Django treats them around a request instead. The fixup
# reads the key under this old-style name only, and only in a worker, where the handlers run.
app.conf.CELERY_DB_REUSE_MAX = sys.maxsize
app.autodiscover_tasks()


def _connections_as_around_a_request(**kwargs):
    """Drop a connection past CONN_MAX_AGE or after an error, and have the next use check the
    rest (CONN_HEALTH_CHECKS), so one the server dropped is replaced before a task fails on it.
    Connected only in a worker, which has a broker and so runs no task in place (eager)."""
    close_old_connections()


@worker_init.connect
def connections_kept_between_tasks(**kwargs):
    task_prerun.connect(_connections_as_around_a_request)
    task_postrun.connect(_connections_as_around_a_request)


@worker_ready.connect
@worker_process_init.connect
def _loaded_objects_frozen(**kwargs):
    """Leave what is loaded by now out of the collector's full passes (see asgi.py): in a
    worker once it is ready, and in each prefork child as it starts."""
    gc.freeze()
