"""Compliance jobs: an export or a chain verification started in the admin runs in the background,
its progress stored as it goes, its file offered when done; a failure stays visible, a role that
may not export gets 403 with nothing stored, and a job whose worker went silent is taken back."""

import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from compliance import writers
from compliance.models import ComplianceJob
from compliance.services import jobs
from compliance.services.exports import ExportError, export_run
from compliance.services.jobs import (
    JobLost,
    chain_verify_job_request,
    export_job_request,
    job_file,
    job_run,
    job_transition,
    jobs_sweep,
)
from compliance.tasks import compliance_jobs_sweep
from governance.roles import PermissionDenied
from ledger.models import AuditEvent
from tests.compliance.conftest import TODAY

EXPORT = "/admin/compliance/export/"
J = ComplianceJob.Status


def job_events(job):
    """(kind, from, to) of the job's audit events, oldest first."""
    events = []
    for event in AuditEvent.objects.filter(kind__startswith="compliance_job.").order_by("id"):
        payload = json.loads(event.payload)
        if payload["job"] == job.pk:
            events.append((event.kind, payload.get("from"), payload.get("to")))
    return events


def export_job(user, kind="proposals", fmt="xlsx"):
    return export_job_request(user=user, actor=f"admin:{user.username}", kind=kind, fmt=fmt, start=TODAY, end=TODAY, strategy=None)


def test_an_export_job_stores_its_progress_as_it_goes_and_its_file_reads_back(history, compliance, jobs_in_process, monkeypatch):
    job = export_job(compliance)
    seen = []

    def export_reporting_every_row(**kwargs):
        report = kwargs["on_progress"]

        def spy(done, total):
            report(done, total)
            seen.append(ComplianceJob.objects.values_list("status", "done", "total").get(pk=job.pk))

        return export_run(**{**kwargs, "on_progress": spy, "progress_every": 1})

    monkeypatch.setattr(jobs, "export_run", export_reporting_every_row)

    job = job_run(job_id=job.pk)

    assert seen == [(J.RUNNING, n, 4) for n in range(5)]
    assert (job.status, job.done, job.total, job.percent, job.attempts) == (J.DONE, 4, 4, 100, 1)
    path = job_file(job=job)
    assert path.parent == jobs_in_process
    workbook = load_workbook(path, read_only=True)
    rows = list(workbook["proposals"].iter_rows(values_only=True))
    assert rows[0][0] == "id" and len(rows) == 1 + 4
    assert job.result["count"] == 4 and job.result["filename"].startswith("chronosx-proposals-") and job.result["filename"].endswith(".xlsx")
    assert job_events(job) == [
        ("compliance_job.requested", None, None),
        ("compliance_job.status", J.QUEUED, J.RUNNING),
        ("compliance_job.status", J.RUNNING, J.DONE),
    ]
    [exported] = AuditEvent.objects.filter(kind="report.exported")
    assert exported.actor == "admin:cora" and json.loads(exported.payload)["sha256"] == job.result["sha256"]


def test_a_compliance_user_follows_an_export_in_the_admin_and_downloads_it(history, login_as, jobs_in_process):
    client = login_as("compliance", "cora")

    page = client.post(EXPORT, {"kind": "votes", "fmt": "csv", "start": TODAY, "end": TODAY}, follow=True)

    job = ComplianceJob.objects.get()
    assert page.redirect_chain == [(f"/admin/compliance/jobs/{job.pk}/", 302)]
    html = page.content.decode()
    assert "<strong class=\"job-status\">done</strong>" in html and 'id="job-download"' in html
    response = client.get(f"/admin/compliance/jobs/{job.pk}/file/")
    text = b"".join(response.streaming_content).decode()
    assert response["X-Export-Count"] == "rows: 6" and len(text.strip().splitlines()) == 1 + 6
    [handed_out] = AuditEvent.objects.filter(kind="report.downloaded")
    assert handed_out.actor == "admin:cora" and json.loads(handed_out.payload) == {
        "job": job.pk, "file": job.file_name, "sha256": job.result["sha256"]}
    listed = client.get(EXPORT).content.decode()
    assert f'href="/admin/compliance/jobs/{job.pk}/file/"' in listed


def test_a_running_job_polls_its_panel_and_a_finished_one_stops(history, compliance, login_as, jobs_in_process):
    client = login_as("compliance", "cora")
    job = export_job(compliance)  # queued: nobody started it
    panel = client.get(f"/admin/compliance/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in panel and "waiting for a worker" in panel and "<html" not in panel

    job_run(job_id=job.pk)

    panel = client.get(f"/admin/compliance/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in panel and 'id="job-download"' in panel


def test_a_failed_export_is_shown_with_its_reason_and_leaves_no_file(history, compliance, login_as, jobs_in_process, monkeypatch):
    def disk_full(path, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers, "xlsx_write", disk_full)
    job = job_run(job_id=export_job(compliance).pk)

    assert job.status == J.FAILED and "No space left on device" in job.error and job.finished_at
    assert job_file(job=job) is None and list(jobs_in_process.iterdir()) == []
    assert job_events(job)[-1] == ("compliance_job.status", J.RUNNING, J.FAILED)
    client = login_as("compliance", "cora")
    assert "Failed: [Errno 28] No space left on device" in client.get(f"/admin/compliance/jobs/{job.pk}/").content.decode()
    assert client.get(f"/admin/compliance/jobs/{job.pk}/file/").status_code == 404
    assert "No space left on device" in client.get(EXPORT).content.decode()


@pytest.mark.parametrize("role", ["viewer", "operator", "risk_officer"])
def test_a_role_that_may_not_export_gets_403_and_nothing_is_stored(history, compliance, login_as, jobs_in_process, role):
    done = job_run(job_id=export_job(compliance).pk)
    client = login_as(role)
    before = AuditEvent.objects.count()

    assert client.post(EXPORT, {"kind": "audit", "fmt": "csv", "start": TODAY, "end": TODAY}).status_code == 403
    assert client.get(f"/admin/compliance/jobs/{done.pk}/").status_code == 403
    assert client.get(f"/admin/compliance/jobs/{done.pk}/file/").status_code == 403
    assert ComplianceJob.objects.count() == 1 and AuditEvent.objects.count() == before
    with pytest.raises(PermissionDenied):
        export_job(client.user)
    assert ComplianceJob.objects.count() == 1


def test_verify_chain_is_refused_to_a_role_without_the_permission_and_nothing_is_stored(history, login_as, jobs_in_process):
    client = login_as("operator")
    assert client.post("/admin/ledger/auditevent/verify/").status_code == 403
    with pytest.raises(PermissionDenied):
        chain_verify_job_request(user=client.user, actor="admin:operator")
    assert not ComplianceJob.objects.exists()


def test_an_export_the_service_would_refuse_is_refused_before_a_job_is_stored(history, compliance):
    with pytest.raises(ExportError, match="report exports as pdf"):
        export_job(compliance, kind="report", fmt="xlsx")
    assert not ComplianceJob.objects.exists()


def test_a_chain_verification_job_keeps_the_result_and_the_head_hash(history, compliance, jobs_in_process):
    job = job_run(job_id=chain_verify_job_request(user=compliance, actor="admin:cora").pk)

    head = AuditEvent.objects.exclude(seq=None).order_by("-seq").first()
    assert job.status == J.DONE and job.result["ok"] is True
    assert (job.result["head_seq"], job.result["head_hash"]) == (head.seq, head.hash)
    assert job.done == job.total == head.seq
    done_event = AuditEvent.objects.filter(kind="compliance_job.status").order_by("-id").first()
    assert json.loads(done_event.payload)["head_hash"] == head.hash


def claimed_long_ago(job, *, attempt=1, seconds=3600):
    """A job a worker claimed (claim number `attempt`) and then went silent."""
    ComplianceJob.objects.filter(pk=job.pk).update(attempts=attempt - 1)
    assert job_transition(job_id=job.pk, to=J.RUNNING, actor="compliance", reason="claimed", attempt=attempt - 1,
                          fields={"attempts": attempt})
    ComplianceJob.objects.filter(pk=job.pk).update(progress_at=timezone.now() - timedelta(seconds=seconds))


def test_a_job_whose_worker_went_silent_is_run_again_by_the_sweeper(history, compliance, jobs_in_process, settings):
    job = export_job(compliance)
    claimed_long_ago(job, seconds=settings.CHRONOSX_JOB_STALE_SECONDS + 1)
    jobs_in_process.mkdir()
    half_written = jobs_in_process / f".job-{job.pk}-1.xlsx.4242.partial"
    half_written.write_bytes(b"PK")

    assert compliance_jobs_sweep() == [job.pk]  # queued again, and started at once (in process here)

    job.refresh_from_db()
    assert (job.status, job.attempts) == (J.DONE, 2) and job_file(job=job).name == f"job-{job.pk}-2.xlsx"
    assert sorted(p.name for p in jobs_in_process.iterdir()) == [f"job-{job.pk}-2.xlsx"]
    assert [e[1:] for e in job_events(job)] == [
        (None, None), (J.QUEUED, J.RUNNING), (J.RUNNING, J.QUEUED), (J.QUEUED, J.RUNNING), (J.RUNNING, J.DONE)
    ]
    swept = AuditEvent.objects.filter(kind="compliance_job.status", actor="compliance:sweeper").get()
    assert "reported no progress since" in json.loads(swept.payload)["reason"]


def test_a_job_silent_on_its_last_attempt_is_failed_and_never_left_running(history, compliance, jobs_in_process):
    job = export_job(compliance)
    claimed_long_ago(job, attempt=jobs.JOB_ATTEMPTS)

    assert jobs_sweep() == []

    job.refresh_from_db()
    assert job.status == J.FAILED and "given up" in job.error and job.finished_at


def test_a_job_still_reporting_progress_is_left_alone(history, compliance, jobs_in_process, settings):
    job = export_job(compliance)
    claimed_long_ago(job, seconds=settings.CHRONOSX_JOB_STALE_SECONDS - 30)

    assert jobs_sweep() == []
    job.refresh_from_db()
    assert job.status == J.RUNNING


def test_a_worker_taken_for_dead_stops_at_its_next_report_and_leaves_its_successor_alone(history, compliance, jobs_in_process):
    job = export_job(compliance)
    claimed_long_ago(job)
    late_worker = jobs._progress(job_id=job.pk, attempt=1, writer=lambda write: write())
    jobs_sweep()  # queued again (nothing starts it here)
    assert job_transition(job_id=job.pk, to=J.RUNNING, actor="compliance", reason="claimed", attempt=1, fields={"attempts": 2})

    with pytest.raises(JobLost):
        late_worker(10, 10)

    job.refresh_from_db()
    assert (job.status, job.attempts, job.done) == (J.RUNNING, 2, 0)


def test_a_queued_job_nobody_took_is_offered_again(history, compliance, jobs_in_process, settings):
    job = export_job(compliance)
    ComplianceJob.objects.filter(pk=job.pk).update(progress_at=timezone.now() - timedelta(seconds=settings.CHRONOSX_JOB_STALE_SECONDS + 1))

    assert compliance_jobs_sweep() == [job.pk]

    job.refresh_from_db()
    assert job.status == J.DONE and job.attempts == 1


def test_a_second_start_of_the_same_job_runs_it_once(history, compliance, jobs_in_process):
    job = export_job(compliance)
    assert job_run(job_id=job.pk).status == J.DONE
    assert job_run(job_id=job.pk) is None
    assert AuditEvent.objects.filter(kind="report.exported").count() == 1


def test_the_xlsx_a_job_wrote_is_what_the_download_sends(history, login_as, jobs_in_process):
    client = login_as("compliance", "cora")
    client.post(EXPORT, {"kind": "audit", "fmt": "xlsx", "start": TODAY, "end": TODAY})
    job = ComplianceJob.objects.get()
    response = client.get(f"/admin/compliance/jobs/{job.pk}/file/")
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    about = dict(workbook["export"].iter_rows(values_only=True))
    assert about["chain verified"] == "true" and about["rows"] == job.result["count"] == job.done


def test_an_export_finished_after_its_job_was_taken_back_keeps_the_file_its_audit_event_names(
    history, compliance, jobs_in_process, monkeypatch
):
    import hashlib

    job = export_job(compliance, fmt="csv")

    def export_then_taken_back(**kwargs):
        result = export_run(**kwargs)  # report.exported is on the chain from here
        ComplianceJob.objects.filter(pk=job.pk).update(progress_at=timezone.now() - timedelta(hours=1))
        assert jobs_sweep() == [job.pk]
        return result

    monkeypatch.setattr(jobs, "export_run", export_then_taken_back)
    assert job_run(job_id=job.pk) is None  # lost: the done transition is the next claim's

    [event] = [json.loads(e.payload) for e in AuditEvent.objects.filter(kind="report.exported")]
    kept = jobs_in_process / event["file"]
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == event["sha256"]


def test_the_sweeper_leaves_a_job_whose_worker_reported_progress_after_it_looked(history, compliance, jobs_in_process,
                                                                               monkeypatch):
    job = export_job(compliance)
    claimed_long_ago(job)
    real_transition = jobs.job_transition

    def worker_reports_first(**kwargs):  # between the sweeper's look and its locked transition
        ComplianceJob.objects.filter(pk=job.pk).update(progress_at=timezone.now())
        return real_transition(**kwargs)

    monkeypatch.setattr(jobs, "job_transition", worker_reports_first)
    assert jobs_sweep() == []
    assert ComplianceJob.objects.get(pk=job.pk).status == J.RUNNING
