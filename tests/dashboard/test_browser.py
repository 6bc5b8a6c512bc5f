"""The dashboard in a real headless Chromium: login, htmx swaps, refresh, expand, screenshot."""

import json
from pathlib import Path

import pytest
from django.utils import timezone

from governance.models import WorkerHeartbeat
from tests.ci_services import service_missing  # fails instead of skipping under CI=true
from tests.dashboard.chromium import Chromium, chromium_missing_reason

SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "dashboard.png"
PANELS = ["health", "nodes", "controls", "ruleset", "portfolio", "allocation", "decisions", "activity", "proposals"]

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


def test_dashboard_renders_in_chromium_and_htmx_keeps_the_panels_live(browser, live_server, staff_user, trace_data):
    now = timezone.now()
    for node in ("risk", "portfolio"):
        WorkerHeartbeat.objects.update_or_create(kind=node, defaults={"last_heartbeat": now, "key_id": f"{node}-k1", "host": "127.0.0.1"})

    # Not logged in: the dashboard sends the browser to the admin login.
    browser.navigate(f"{live_server.url}/")
    assert browser.evaluate("location.pathname + location.search") == "/admin/login/?next=/"
    browser.log_in(staff_user.username, "op-pass-123", then="/")
    assert "Venue: sandbox SANDBOX Orders live: NO" in " ".join(browser.evaluate("document.getElementById('venue').innerText").split())

    # htmx itself loaded from our static file, then every panel was swapped in by its first hx-get
    # (the "as of" stamp exists only in partial responses; the page ships "loading…").
    assert browser.wait_for("window.htmx && htmx.version", "htmx to load").startswith("2.")
    browser.wait_for(
        f"document.querySelectorAll('main .panel .body .stamp').length === {len(PANELS)}", "every panel's first refresh"
    )
    texts = {name: browser.evaluate(f"document.getElementById('body-{name}').innerText") for name in PANELS}
    assert all("loading…" not in t for t in texts.values())
    assert "Database\tok" in texts["health"] or "Database ok" in texts["health"]
    assert "2 of 3" in texts["health"]
    assert "HALTED" not in texts["controls"] and "ENABLED" in texts["controls"]
    assert "Minimum confidence" in texts["ruleset"] and "0.60" in texts["ruleset"]
    assert "SANDBOX" in texts["proposals"]
    assert "No allocation policy in ruleset v1" in texts["allocation"]
    assert browser.evaluate("document.getElementById('realized-pnl').innerText") == "0"
    assert "exits are disabled" in browser.evaluate("document.getElementById('pnl-reason').innerText")

    # Click a row: its trace (failed checks with details) opens under it...
    blocked = trace_data["blocked_id"]
    browser.evaluate(f"document.getElementById({js('proposal-' + blocked)}).click()")
    trace = browser.wait_for(f"(document.getElementById({js('trace-' + blocked)}) || {{}}).innerText", "the expanded trace")
    assert "trading is halted: maintenance window" in trace

    # ...and stays open across the next timed refresh (the stamp proves one happened).
    stamp = browser.evaluate("document.querySelector('#body-proposals .stamp').dataset.stamp")
    browser.wait_for(
        f"document.querySelector('#body-proposals .stamp').dataset.stamp !== {js(stamp)}", "a timed refresh", timeout=10
    )
    assert browser.evaluate(f"!!document.getElementById({js('trace-' + blocked)})")

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    png = browser.screenshot(SCREENSHOT)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
