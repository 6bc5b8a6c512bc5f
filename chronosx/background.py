"""Background jobs an operator starts from a page (an impact replay, a compliance export or
chain verification): run once the transaction that made the job commits, on the reports
queue; with no broker (the embedded default) on a thread of this process. Either way the
request that asked answers at once and its page shows the job's progress.

Not the governance queue: a quarter's export or a walk of the whole chain runs for minutes, and
on the worker that evaluates proposals two of them at once would stop every decision. The
production stack serves the reports queue with a worker of its own."""

import threading

from django.conf import settings
from django.db import connections, transaction


REPORTS_QUEUE = "reports"


def background_start(*, task, job_id: int, name: str) -> None:
    """Run the Celery `task` with `job_id`; `name` names the thread in the embedded default."""
    if settings.EMBEDDED_TASKS:
        thread = threading.Thread(target=_run_on_thread, args=(task, job_id), name=f"{name}-{job_id}", daemon=True)
        transaction.on_commit(thread.start)
    else:
        transaction.on_commit(lambda: task.apply_async(args=[job_id], queue=REPORTS_QUEUE), robust=True)


def _run_on_thread(task, job_id: int) -> None:
    try:
        task(job_id)  # the task's body, here, as the worker would run it
    finally:
        connections.close_all()  # this thread's connections
