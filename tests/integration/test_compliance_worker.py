"""A compliance export through a real governance worker on Redis, killed half-way: the job stays
visible as running, the sweeper queues it again once it has been silent, and a second worker
writes the whole file."""

import signal
import time

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from chronosx.canonical import canonical_json
from compliance.models import ComplianceJob
from compliance.services.jobs import export_job_request, job_file
from compliance.tasks import compliance_job_start, compliance_jobs_sweep
from ledger.models import AuditEvent
from ledger.services import audit_chain_extend
from tests.builders import staff_member
from tests.compliance.conftest import TODAY
from tests.integration.workers import broker, log_tail, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.integration

J = ComplianceJob.Status
EVENTS = 20_000  # an XLSX export of some seconds: time to kill its worker half-way


def test_an_export_whose_worker_is_killed_half_way_is_finished_by_another_worker(settings, tmp_path):
    settings.CHRONOSX_EXPORT_DIR = tmp_path / "exports"
    env = {"CHRONOSX_EXPORT_DIR": str(settings.CHRONOSX_EXPORT_DIR)}
    cora = staff_member("compliance", "cora")
    now = timezone.now().isoformat()
    AuditEvent.objects.bulk_create(
        [AuditEvent(kind="test.event", actor="test", created_at=now, payload=canonical_json({"i": i})) for i in range(EVENTS)],
        batch_size=5000,
    )
    while audit_chain_extend():
        pass
    chained = AuditEvent.objects.exclude(seq=None).count()

    with broker(settings):
        first = start_worker(queues=["reports"], name="compliance-first", log_dir=tmp_path, env=env)
        try:
            job = export_job_request(user=cora, actor="admin:cora", kind="audit", fmt="xlsx", start=TODAY, end=TODAY, strategy=None)
            compliance_job_start(job.pk)
            wait_for(lambda: ComplianceJob.objects.filter(pk=job.pk, done__gt=0).exists(), timeout=90, interval=0.05,
                     what=f"the first worker's progress\n{log_tail(tmp_path / 'worker-compliance-first.log')}")
        finally:
            stop_worker(first, sig=signal.SIGKILL)
        job.refresh_from_db()
        assert (job.status, job.attempts) == (J.RUNNING, 1) and 0 < job.done < job.total

        settings.CHRONOSX_JOB_STALE_SECONDS = 1
        time.sleep(1.5)
        second = start_worker(queues=["reports"], name="compliance-second", log_dir=tmp_path, env=env)
        try:
            assert compliance_jobs_sweep() == [job.pk]
            wait_for(lambda: ComplianceJob.objects.filter(pk=job.pk, status__in=[J.DONE, J.FAILED]).exists(), timeout=120,
                     what=f"the second worker to finish\n{log_tail(tmp_path / 'worker-compliance-second.log')}")
        finally:
            stop_worker(second)

    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == (J.DONE, 2, "")
    workbook = load_workbook(job_file(job=job), read_only=True)
    rows = sum(1 for _ in workbook["audit"].iter_rows(values_only=True)) - 1
    assert rows == job.result["count"] >= chained
    # The killed worker's file never appeared (nor a partial one: the sweeper removes those).
    assert sorted(p.name for p in settings.CHRONOSX_EXPORT_DIR.iterdir()) == [f"job-{job.pk}-2.xlsx"]
