"""Compliance's Celery tasks: a job started in the admin, and the sweeper that takes back the
jobs of workers that went silent. Tasks take ids, re-fetch, and call a service."""

from celery import shared_task

from chronosx.background import background_start
from compliance.services.jobs import job_run, jobs_sweep


@shared_task(name="compliance.job", acks_late=True)
def compliance_job_task(job_id: int):
    job = job_run(job_id=job_id)
    return None if job is None else job.status


def compliance_job_start(job_id: int) -> None:
    """Run a queued job once the transaction that made it commits (chronosx.background)."""
    background_start(task=compliance_job_task, job_id=job_id, name="compliance-job")


def compliance_jobs_sweep() -> list[int]:
    """The sweeper's round (Celery beat, or the embedded loop): jobs taken back are started again."""
    restart = jobs_sweep()
    for job_id in restart:
        compliance_job_start(job_id)
    return restart


@shared_task(name="compliance.sweep")
def compliance_jobs_sweep_task():
    return compliance_jobs_sweep()
