"""Compliance in the admin: the export page (same service as the command, run as a background
job) and the audit trail."""

import io
import json
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from openpyxl import load_workbook
from pypdf import PdfReader

from ledger.models import AuditEvent
from tests.compliance.conftest import LAST_WEEK, TODAY

EXPORT = "/admin/compliance/export/"
AUDIT = "/admin/ledger/auditevent/"


def exports():
    return [json.loads(e.payload) | {"actor": e.actor} for e in AuditEvent.objects.filter(kind="report.exported")]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def export_through_a_job(client, form):
    """Post the export form, follow to the job's page, and take the file it offers."""
    page = client.post(EXPORT, form, follow=True)
    assert page.status_code == 200, page.content.decode()
    assert 'id="job-download"' in page.content.decode(), page.content.decode()
    [(job_url, _)] = page.redirect_chain
    return client.get(f"{job_url}file/")


def test_a_compliance_user_downloads_an_xlsx_from_the_admin_and_it_is_audited(history, login_as, jobs_in_process):
    client = login_as("compliance", "cora")
    page = client.get(EXPORT)
    assert page.status_code == 200 and b'name="kind"' in page.content
    assert b'id="compliance-export-link"' in client.get("/admin/").content

    response = export_through_a_job(client, {"kind": "fills", "fmt": "xlsx", "start": TODAY, "end": TODAY, "strategy": "demo"})

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="chronosx-fills-')
    assert response["X-Export-Count"] == "rows: 3"
    workbook = load_workbook(io.BytesIO(body(response)), read_only=True)
    assert workbook.sheetnames == ["export", "fills"]
    assert len(list(workbook["fills"].iter_rows(values_only=True))) == 1 + 3
    [event] = exports()
    assert event["actor"] == "admin:cora" and event["report"] == "fills" and event["strategy"] == "demo"
    assert event["sha256"] == response["X-Export-SHA256"]


def test_the_report_downloads_as_a_pdf(history, login_as, jobs_in_process):
    client = login_as("compliance", "cora")
    response = export_through_a_job(client, {"kind": "report", "fmt": "pdf", "start": TODAY, "end": TODAY})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    pages = len(PdfReader(io.BytesIO(body(response))).pages)
    assert response["X-Export-Count"] == f"pages: {pages}"


@pytest.mark.parametrize(
    "form, message",
    [
        ({"kind": "report", "fmt": "csv", "start": TODAY, "end": TODAY}, "report exports as pdf"),
        ({"kind": "orders", "fmt": "csv", "start": TODAY, "end": LAST_WEEK}, "must be after --from"),
        ({"kind": "orders", "fmt": "csv", "start": "2026-02-31", "end": TODAY}, "is not a valid date"),
    ],
)
def test_a_bad_request_shows_why_and_exports_nothing(seeded, login_as, form, message):
    client = login_as("compliance", "cora")
    response = client.post(EXPORT, form)
    assert response.status_code == 400 and message in response.content.decode()
    assert exports() == []


@pytest.mark.parametrize("role", ["viewer", "operator", "risk_officer"])
def test_other_roles_get_no_export_page_and_a_forged_post_exports_nothing(history, login_as, role):
    client = login_as(role)
    assert client.get(EXPORT).status_code == 403
    assert client.post(EXPORT, {"kind": "audit", "fmt": "csv", "start": TODAY, "end": TODAY}).status_code == 403
    assert b'id="compliance-export-link"' not in client.get("/admin/").content
    assert exports() == []


def rows_seq(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'<th class="field-seq"><a [^>]*>(\d+)</a>', html)]


def test_the_audit_trail_lists_newest_first_with_readable_payloads_and_the_chain_head(history, login_as):
    client = login_as("viewer")
    html = client.get(AUDIT).content.decode()
    seqs = rows_seq(html)
    assert seqs and seqs == sorted(seqs, reverse=True)
    head = AuditEvent.objects.exclude(seq=None).order_by("-seq").first()
    assert seqs[0] == head.seq
    assert f"seq {head.seq}, hash <code>{head.hash}</code>" in html
    assert "reason=venue flapping" in html  # payload as key=value, not raw JSON
    assert 'id="verify-chain"' not in html  # viewers do not verify

    event = AuditEvent.objects.filter(kind="breaker.tripped").get()
    detail = client.get(f"{AUDIT}{event.pk}/change/").content.decode()
    assert '"reason": "venue flapping"' in detail.replace("&quot;", '"')


def test_the_audit_trail_filters_by_time_and_kind(history, login_as):
    client = login_as("compliance", "cora")
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()  # with its offset: an aware bound
    assert rows_seq(client.get(AUDIT, {"created_at__gte": tomorrow}).content.decode()) == []
    assert rows_seq(client.get(AUDIT, {"created_at__gte": (timezone.now() - timedelta(days=1)).isoformat()}).content.decode())
    html = client.get(AUDIT, {"kind": "trading.halted"}).content.decode()
    assert len(rows_seq(html)) == 1 and "maintenance window" in html


def test_verify_chain_shows_the_result_and_the_head_hash_verify_audit_prints(history, login_as, jobs_in_process):
    client = login_as("compliance", "cora")
    assert 'id="verify-chain"' in client.get(AUDIT).content.decode()
    out = io.StringIO()
    call_command("verify_audit", "--show-head", stdout=out)
    head = out.getvalue().splitlines()[-1].removeprefix("head ")

    response = client.post(f"{AUDIT}verify/", follow=True)

    html = response.content.decode()
    assert "Chain verification: OK" in html
    assert f'<code id="chain-verified-head">{head}</code>' in html


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_verify_chain_is_refused_to_roles_without_the_permission(history, login_as, role):
    client = login_as(role)
    assert client.post(f"{AUDIT}verify/").status_code == 403
