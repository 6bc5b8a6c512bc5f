"""Compliance jobs: an export, or a verification of the audit chain, run in the background for
a person in the admin; its progress is kept on the row, and the file (or the chain's status and
head hash) is offered when it is done.

The lifecycle is one transitions table and one transition function (job_transition), which does
the conditional update and writes the audit event in the same transaction:

    queued  -> running  a worker claims it (one worker only: the claim is conditional)
    running -> done     the file is complete (and audited as `report.exported`), or the chain walked
            |  failed   the export could not be made, the worker failed, or it went silent twice
            |  queued   the sweeper: its worker stopped reporting progress; it is tried once more

A worker writes to its job only while the job's claim count is its own, so a worker taken for
dead that wakes up again stops at its next progress report and leaves its successor's work alone.
"""

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from compliance.models import ComplianceJob
from compliance.selectors.audit import audit_chain_status
from compliance.services.exports import ExportError, export_check, export_period, export_run
from governance.roles import EXPORT_REPORTS, VERIFY_AUDIT, require, user_may
from ledger.selectors import audit_chain_head
from ledger.services import audit_record

log = logging.getLogger(__name__)

J = ComplianceJob.Status
WORKER = "compliance"
SWEEPER = "compliance:sweeper"
# Claims a job gets in all: a worker that went silent once is replaced once, then it fails.
JOB_ATTEMPTS = 2

JOB_TRANSITIONS = {J.QUEUED: {J.RUNNING}, J.RUNNING: {J.DONE, J.FAILED, J.QUEUED}}
PERMISSIONS = {ComplianceJob.Task.EXPORT: EXPORT_REPORTS, ComplianceJob.Task.VERIFY_CHAIN: VERIFY_AUDIT}


class JobLost(Exception):
    """This worker no longer holds the job (the sweeper gave it to another, or failed it)."""


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def job_transition(*, job_id, to: str, actor: str, reason: str, attempt: int, fields: dict | None = None,
                   extra: dict | None = None, silent_before=None) -> bool:
    """Move a job to `to` if the transitions table allows it from its status now and its claim
    count is still `attempt` (and, with `silent_before`, its worker has reported no progress
    since then), setting `fields` with it; the row is locked and the audit event written in the
    same transaction. Returns whether it moved."""
    allowed = {status for status, targets in JOB_TRANSITIONS.items() if to in targets}
    row = (ComplianceJob.objects.select_for_update().filter(id=job_id)
           .values_list("status", "attempts", "task", "progress_at").first())
    if row is None:
        return False
    current, attempts, task, progress_at = row
    if current not in allowed or attempts != attempt:
        return False
    if silent_before is not None and progress_at >= silent_before:
        return False  # the worker spoke up after the sweeper looked: still its job
    ComplianceJob.objects.filter(id=job_id, status=current, attempts=attempt).update(status=to, **(fields or {}))
    audit_record(
        kind="compliance_job.status",
        actor=actor,
        payload={"job": job_id, "task": task, "from": current, "to": to, "reason": reason, **(extra or {})},
    )
    return True


@transaction.atomic
def _job_request(*, task: str, params: dict, actor: str) -> ComplianceJob:
    now = timezone.now()
    job = ComplianceJob.objects.create(task=task, params=params, requested_by=actor, requested_at=now, progress_at=now)
    audit_record(kind="compliance_job.requested", actor=actor, payload={"job": job.pk, "task": task, **params})
    return job


def export_job_request(*, user, actor: str, kind: str, fmt: str, start: str, end: str, strategy: str | None) -> ComplianceJob:
    """A queued export (compliance_job_start runs it). Refused, with nothing stored, to a role
    that may not export (governance.roles.PermissionDenied), and for a range, kind, format or
    strategy the export would refuse (ExportError)."""
    require(user, EXPORT_REPORTS, "export reports")
    export_check(kind=kind, fmt=fmt, strategy=strategy)
    export_period(start=start, end=end)
    params = {"kind": kind, "fmt": fmt, "start": str(start), "end": str(end), "strategy": strategy or None}
    return _job_request(task=ComplianceJob.Task.EXPORT, params=params, actor=actor)


def chain_verify_job_request(*, user, actor: str) -> ComplianceJob:
    """A queued verification of the whole audit chain (compliance_job_start runs it)."""
    require(user, VERIFY_AUDIT, "verify the audit chain")
    return _job_request(task=ComplianceJob.Task.VERIFY_CHAIN, params={}, actor=actor)


def job_user_may(*, user, job: ComplianceJob) -> bool:
    """Whether `user` may see the job and take its file: the role that may start it."""
    return user_may(user, PERMISSIONS[job.task])


def job_file(*, job: ComplianceJob) -> Path | None:
    """The finished export's file, None when there is none (not done, or already removed)."""
    if job.task != ComplianceJob.Task.EXPORT or job.status != J.DONE or not job.file_name:
        return None
    path = Path(settings.CHRONOSX_EXPORT_DIR) / Path(job.file_name).name
    return path if path.is_file() else None


def job_file_hand_out(*, job: ComplianceJob, actor: str) -> Path | None:
    """The finished export's file for a download, which is audited: who took the data out,
    and which file (by its hash). None when there is no file to hand out."""
    path = job_file(job=job)
    if path is not None:
        audit_record(kind="report.downloaded", actor=actor,
                     payload={"job": job.pk, "file": path.name, "sha256": job.result["sha256"]})
    return path


@contextmanager
def _progress_writer():
    """Runs a progress write. On SQLite, on a thread of its own with its own connection: the
    runner's connection is inside a read (the rows being exported), and SQLite cannot turn a read
    into a write once another connection has written since it began ("database is locked").
    PostgreSQL has no such limit, and the runner's own connection writes."""
    if not settings.IS_SQLITE:
        yield lambda write: write()
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="compliance-progress") as pool:
        try:
            yield lambda write: pool.submit(write).result()
        finally:
            pool.submit(connections.close_all).result()  # that thread's connection


def _progress(*, job_id, attempt: int, writer):
    def write(done: int, total: int) -> int:
        return ComplianceJob.objects.filter(id=job_id, status=J.RUNNING, attempts=attempt).update(
            done=done, total=total, progress_at=timezone.now()
        )

    def report(done: int, total: int) -> None:
        if not writer(lambda: write(done, total)):
            raise JobLost(f"job {job_id}: attempt {attempt} is no longer running it")

    return report


def _export(job: ComplianceJob, *, attempt: int, report) -> tuple[dict, dict]:
    p = job.params
    period = export_period(start=p["start"], end=p["end"])
    folder = Path(settings.CHRONOSX_EXPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    # One name per claim: a late worker can never write over its successor's file.
    stored = f"job-{job.pk}-{attempt}.{p['fmt']}"
    result = export_run(
        kind=p["kind"], fmt=p["fmt"], period=period, strategy=p["strategy"], out=folder / stored,
        actor=job.requested_by, on_progress=report,
    )
    download = f"chronosx-{p['kind']}-{period.since.date()}-{job.requested_at:%Y%m%dT%H%M%SZ}.{p['fmt']}"
    fields = {
        "file_name": stored,
        "done": result.count,
        "total": result.count,
        "result": {"filename": download, "count": result.count, "unit": result.unit, "sha256": result.sha256},
    }
    return fields, {"file": download, result.unit: result.count, "sha256": result.sha256}


def _verify_chain(job: ComplianceJob, *, attempt: int, report) -> tuple[dict, dict]:
    head = audit_chain_head()
    total = head[0] if head else 0
    report(0, total)
    status = audit_chain_status(on_progress=lambda events: report(events, max(total, events)))
    fields = {"done": status.events, "total": max(total, status.events), "result": dataclasses.asdict(status)}
    return fields, {"ok": status.ok, "summary": status.summary, "head_seq": status.head_seq, "head_hash": status.head_hash}


RUNNERS = {ComplianceJob.Task.EXPORT: _export, ComplianceJob.Task.VERIFY_CHAIN: _verify_chain}


def job_run(*, job_id) -> ComplianceJob | None:
    """Run a queued job: claimed by one worker only, its progress stored as it goes, its result
    and audit event written together. Returns the job, or None when it was not this worker's to
    run. A failure is stored on the job, with the reason a person can act on."""
    job = ComplianceJob.objects.filter(id=job_id).first()
    if job is None:
        return None
    attempt, now = job.attempts + 1, timezone.now()
    claimed = job_transition(
        job_id=job.pk, to=J.RUNNING, actor=WORKER, reason="claimed by a worker", attempt=job.attempts,
        fields={"attempts": attempt, "started_at": now, "progress_at": now, "done": 0, "total": 0},
        extra={"attempt": attempt},
    )
    if not claimed:
        return None
    try:
        with _progress_writer() as writer:
            fields, extra = RUNNERS[job.task](job, attempt=attempt, report=_progress(job_id=job.pk, attempt=attempt, writer=writer))
        if not job_transition(job_id=job.pk, to=J.DONE, actor=WORKER, reason="finished", attempt=attempt,
                              fields={**fields, "finished_at": timezone.now()}, extra=extra):
            raise JobLost(f"job {job.pk}: attempt {attempt} finished after losing it")
    except JobLost as exc:
        # A file this attempt finished stays: its report.exported event, with its hash, is on
        # the chain already, and must name a file that exists.
        log.warning("%s", exc)
        return None
    except Exception as exc:
        if not isinstance(exc, ExportError):
            log.exception("compliance job %s failed", job.pk)
        error = str(exc) if isinstance(exc, (ExportError, OSError)) else f"{type(exc).__name__}: {exc}"
        job_transition(job_id=job.pk, to=J.FAILED, actor=WORKER, reason=error, attempt=attempt,
                       fields={"error": error, "finished_at": timezone.now()})
    job.refresh_from_db()
    return job


def jobs_sweep(*, now=None) -> list[int]:
    """Take back what workers left: a running job that has not reported progress within
    CHRONOSX_JOB_STALE_SECONDS is queued again while it has claims left, else failed; a queued
    job nobody took in that time is offered again. Returns the ids to start (a start is a
    conditional claim, so starting one twice runs it once)."""
    now = now or timezone.now()
    silent_since = now - timedelta(seconds=settings.CHRONOSX_JOB_STALE_SECONDS)
    restart = []
    stale = ComplianceJob.objects.filter(status=J.RUNNING, progress_at__lt=silent_since).order_by("id")
    for job_id, attempts, progress_at in stale.values_list("id", "attempts", "progress_at")[:100]:
        silence = f"its worker reported no progress since {progress_at.isoformat()}"
        if attempts < JOB_ATTEMPTS:
            taken_back = job_transition(job_id=job_id, to=J.QUEUED, actor=SWEEPER, reason=f"{silence}: tried again",
                                        attempt=attempts, fields={"progress_at": now}, silent_before=silent_since)
            if taken_back:
                restart.append(job_id)
        else:
            error = f"{silence}, after {attempts} attempts: given up"
            taken_back = job_transition(job_id=job_id, to=J.FAILED, actor=SWEEPER, reason=error, attempt=attempts,
                                        fields={"error": error, "finished_at": now}, silent_before=silent_since)
        if taken_back:
            # What the silent worker had written so far (export_run's partial file) is no one's now.
            for partial in Path(settings.CHRONOSX_EXPORT_DIR).glob(f".job-{job_id}-{attempts}.*.partial"):
                partial.unlink(missing_ok=True)
    waiting = list(ComplianceJob.objects.filter(status=J.QUEUED, progress_at__lt=silent_since).values_list("id", flat=True)[:100])
    ComplianceJob.objects.filter(id__in=waiting, status=J.QUEUED).update(progress_at=now)
    return restart + waiting
