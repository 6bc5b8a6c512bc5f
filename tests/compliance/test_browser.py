"""A compliance user in a real headless Chromium: filters the audit trail, verifies the chain in
the background and reads its result and head hash, and downloads an XLSX and a PDF from the export
page, each made by a background job whose page offers the file when done. Screenshots under
var/screenshots/."""

import json
import re
from pathlib import Path

import pytest

from ledger.models import AuditEvent
from tests.builders import staff_member
from tests.ci_services import service_missing  # fails instead of skipping under CI=true
from tests.compliance.conftest import TODAY
from tests.dashboard.chromium import Chromium, chromium_missing_reason

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

pytestmark = pytest.mark.integration


@pytest.fixture
def browser(tmp_path):
    reason = chromium_missing_reason()
    if reason:
        service_missing(f"browser test: {reason}")
    with Chromium(tmp_path / "profile") as chromium:
        yield chromium
    assert chromium.exceptions == [], f"JavaScript errors on the page: {chromium.exceptions}"


def js(value) -> str:
    return json.dumps(value)


def download(browser, live_server, kind, fmt) -> dict:
    """Fill the export form and press Export; on the job's page, wait for the download link and
    fetch it with the page's own session. Returns what came back (the file stays in the browser)."""
    browser.navigate(f"{live_server.url}/admin/compliance/export/")
    browser.evaluate(
        f"""const form = document.getElementById('export-form');
            form.elements.kind.value = {js(kind)}; form.elements.fmt.value = {js(fmt)};
            form.elements.start.value = {js(TODAY)}; form.elements.end.value = {js(TODAY)};
            form.querySelector('input[type=submit]').click();"""
    )
    browser.wait_for("location.pathname.startsWith('/admin/compliance/jobs/') && document.readyState === 'complete'", "the job's page")
    href = browser.wait_for("(document.getElementById('job-download') || {}).href", f"the {kind} export's download link")
    browser.screenshot(SCREENSHOTS / f"compliance-export-{kind}-done.png")
    return browser.evaluate(
        f"""(async () => {{
            const response = await fetch({js(href)});
            const body = new Uint8Array(await response.arrayBuffer());
            return {{status: response.status, type: response.headers.get('Content-Type'),
                     disposition: response.headers.get('Content-Disposition'),
                     count: response.headers.get('X-Export-Count'), size: body.length,
                     magic: String.fromCharCode(...body.slice(0, 4))}};
        }})()"""
    )


def test_a_compliance_user_filters_the_audit_trail_verifies_the_chain_and_downloads_exports(browser, live_server, history):
    staff_member("compliance", "cora", password="cora-pass-123")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    browser.navigate(f"{live_server.url}/admin/ledger/auditevent/")
    browser.log_in("cora", "cora-pass-123", then="/admin/ledger/auditevent/")

    # Filter by kind through the sidebar, as a person clicks it.
    browser.evaluate("[...document.querySelectorAll('#changelist-filter a')].find(a => a.innerText.trim() === 'breaker.tripped').click()")
    browser.wait_for("location.search.includes('kind=breaker.tripped') && document.readyState === 'complete'", "the filtered list")
    rows = browser.evaluate("[...document.querySelectorAll('#result_list tbody tr')].map(r => r.innerText)")
    assert len(rows) == 1 and "venue flapping" in rows[0] and "operator:carol" in rows[0]

    browser.evaluate("document.getElementById('verify-chain').click()")
    verified = browser.wait_for("(document.getElementById('chain-verified') || {}).innerText", "the verification result")
    assert "Chain verification: OK" in verified
    head = browser.evaluate("document.getElementById('chain-verified-head').innerText")
    head_seq = int(re.search(r"head seq (\d+)", verified).group(1))
    assert AuditEvent.objects.get(seq=head_seq).hash == head
    assert browser.evaluate("location.search") == "?kind=breaker.tripped"  # still filtered
    browser.screenshot(SCREENSHOTS / "compliance-audit-trail.png")

    browser.evaluate("document.getElementById('compliance-export-link').click()")
    browser.wait_for("location.pathname === '/admin/compliance/export/' && document.readyState === 'complete'", "the export page")
    browser.screenshot(SCREENSHOTS / "compliance-export-page.png")
    xlsx = download(browser, live_server, "votes", "xlsx")
    assert xlsx["status"] == 200 and xlsx["type"].startswith("application/vnd.openxmlformats")
    assert xlsx["count"] == "rows: 6" and xlsx["magic"] == "PK\x03\x04" and 'filename="chronosx-votes-' in xlsx["disposition"]
    pdf = download(browser, live_server, "report", "pdf")
    assert pdf["status"] == 200 and pdf["type"] == "application/pdf" and pdf["magic"] == "%PDF"
    assert pdf["count"].startswith("pages: ")

    # Both are listed on the export page, each with its file.
    browser.navigate(f"{live_server.url}/admin/compliance/export/")
    listed = browser.evaluate("[...document.querySelectorAll('#export-jobs tbody tr')].map(r => r.innerText)")
    assert len(listed) == 2 and all("done" in row for row in listed)
    assert ".pdf" in listed[0] and ".xlsx" in listed[1]  # newest first
