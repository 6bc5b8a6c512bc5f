"""Compliance's Celery tasks: a job started in the admin, and the sweeper that takes back the
jobs of workers that went silent. Tasks take ids, re-fetch, and call a service."""

import threading

from celery import shared_task
from django.conf import settings
from django.db import connections, transaction

from compliance.services.jobs import job_run, jobs_sweep


@shared_task(name="compliance.job", acks_late=True)
def compliance_job_task(job_id: int):
    job = job_run(job_id=job_id)
    return None if job is None else job.status


def _job_on_thread(job_id: int) -> None:
    try:
        job_run(job_id=job_id)
    finally:
        connections.close_all()  # this thread's connections


def compliance_job_start(job_id: int) -> None:
    """Run a queued job once the transaction that made it commits: on the governance queue;
    with no broker (the embedded default) on a thread of this process, so the admin request
    that asked for it answers at once and the page shows its progress."""
    if settings.EMBEDDED_TASKS:
        thread = threading.Thread(target=_job_on_thread, args=(job_id,), name=f"compliance-job-{job_id}", daemon=True)
        transaction.on_commit(thread.start)
    else:
        transaction.on_commit(lambda: compliance_job_task.apply_async(args=[job_id], queue="governance"), robust=True)


def compliance_jobs_sweep() -> list[int]:
    """The sweeper's round (Celery beat, or the embedded loop): jobs taken back are started again."""
    restart = jobs_sweep()
    for job_id in restart:
        compliance_job_start(job_id)
    return restart


@shared_task(name="compliance.sweep")
def compliance_jobs_sweep_task():
    return compliance_jobs_sweep()
