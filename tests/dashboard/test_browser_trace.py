"""The trace's filter in a real headless Chromium: it narrows the rows and survives the refresh."""

import json
from pathlib import Path

import pytest

from tests.dashboard.test_browser import browser  # noqa: F401 (the fixture)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

pytestmark = pytest.mark.integration


def js(value) -> str:
    return json.dumps(value)


def test_an_operator_filters_the_trace_and_the_filter_outlives_the_refresh(browser, live_server, staff_user, trace_data):  # noqa: F811
    browser.navigate(f"{live_server.url}/")
    browser.log_in(staff_user.username, "op-pass-123", then="/")
    browser.wait_for("document.querySelectorAll('main .panel .body .stamp').length === document.querySelectorAll('main .panel').length", "every panel's first refresh")
    rows = "[...document.querySelectorAll('#body-proposals tr.proposal')].map(r => r.id)"
    assert len(browser.evaluate(rows)) == 2
    assert browser.evaluate("!!document.getElementById('bar-asset-BTCUSDT')")  # exposure against its cap

    browser.evaluate(
        """const status = document.querySelector('#trace-filter select[name=status]');
           status.value = 'blocked'; status.dispatchEvent(new Event('change', {bubbles: true}));"""
    )
    blocked = [f"proposal-{trace_data['blocked_id']}"]
    browser.wait_for(f"JSON.stringify({rows}) === {js(json.dumps(blocked, separators=(',', ':')))}", "the filtered trace")
    stamp = browser.evaluate("document.querySelector('#body-proposals .stamp').dataset.stamp")
    browser.wait_for(
        f"document.querySelector('#body-proposals .stamp').dataset.stamp !== {js(stamp)}", "a timed refresh", timeout=10
    )
    assert browser.evaluate(rows) == blocked
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(SCREENSHOTS / "dashboard-trace-filtered.png")
