"""A compliance user in a real headless Chromium: filters the audit trail, verifies the chain,
and downloads an XLSX and a PDF from the export page. Screenshots under var/screenshots/."""

import json
from pathlib import Path

import pytest

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


def download(browser, kind, fmt) -> dict:
    """Fill the export form and post it with the page's own session and CSRF token, as the
    Export button does; returns what came back (the file itself stays in the browser)."""
    return browser.evaluate(
        f"""(async () => {{
            const form = document.getElementById('export-form');
            form.elements.kind.value = {js(kind)}; form.elements.fmt.value = {js(fmt)};
            form.elements.start.value = {js(TODAY)}; form.elements.end.value = {js(TODAY)};
            const response = await fetch(form.action || location.href, {{method: 'POST', body: new FormData(form)}});
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
    browser.evaluate(
        """document.getElementById('id_username').value = 'cora';
           document.getElementById('id_password').value = 'cora-pass-123';
           document.getElementById('login-form').submit();"""
    )
    browser.wait_for("location.pathname === '/admin/ledger/auditevent/' && document.readyState === 'complete'", "the audit trail")

    # Filter by kind through the sidebar, as a person clicks it.
    browser.evaluate("[...document.querySelectorAll('#changelist-filter a')].find(a => a.innerText.trim() === 'breaker.tripped').click()")
    browser.wait_for("location.search.includes('kind=breaker.tripped') && document.readyState === 'complete'", "the filtered list")
    rows = browser.evaluate("[...document.querySelectorAll('#result_list tbody tr')].map(r => r.innerText)")
    assert len(rows) == 1 and "venue flapping" in rows[0] and "operator:carol" in rows[0]

    browser.evaluate("document.getElementById('verify-chain').click()")
    verified = browser.wait_for("(document.getElementById('chain-verified') || {}).innerText", "the verification result")
    assert "Chain verification: OK" in verified
    head = browser.evaluate("document.getElementById('chain-verified-head').innerText")
    assert len(head) == 64
    assert browser.evaluate("location.search") == "?kind=breaker.tripped"  # still filtered
    browser.screenshot(SCREENSHOTS / "compliance-audit-trail.png")

    browser.evaluate("document.getElementById('compliance-export-link').click()")
    browser.wait_for("location.pathname === '/admin/compliance/export/' && document.readyState === 'complete'", "the export page")
    browser.screenshot(SCREENSHOTS / "compliance-export-page.png")
    xlsx = download(browser, "votes", "xlsx")
    assert xlsx["status"] == 200 and xlsx["type"].startswith("application/vnd.openxmlformats")
    assert xlsx["count"] == "rows: 6" and xlsx["magic"] == "PK\x03\x04" and 'filename="chronosx-votes-' in xlsx["disposition"]
    pdf = download(browser, "report", "pdf")
    assert pdf["status"] == 200 and pdf["type"] == "application/pdf" and pdf["magic"] == "%PDF"
    assert pdf["count"].startswith("pages: ")
