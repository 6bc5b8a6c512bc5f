import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")

app = Celery("chronosx")
app.config_from_object("django.conf:settings", namespace="CELERY")
# One result backend object per process, not one per thread: the web tier sends tasks from a
# new thread per request, and making the backend again scanned the installed packages' entry
# points on every POST (about a tenth of the web tier's CPU). Celery reads this key as it makes
# the backend, but it is not one of its named settings, so the CELERY_ namespace cannot set it.
app.conf.result_backend_thread_safe = True
app.autodiscover_tasks()
