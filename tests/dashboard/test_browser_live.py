"""The desk's screen live, in a real headless Chromium: an operator watches the dashboard while an
agent's proposal arrives; it appears on the next htmx refresh (no reload), its trace shows every
vote's signature verified, and the utilisation bars move with its fill. Screenshots under
var/screenshots/."""

import json
from pathlib import Path

import pytest

from governance.models import Proposal, Vote
from tests.builders import post_proposal, proposal_body, staff_member
from tests.dashboard.test_browser import browser  # noqa: F401 (the fixture)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ROWS = "[...document.querySelectorAll('#body-proposals tr.proposal')].map(r => r.id)"

pytestmark = pytest.mark.integration


def js(value) -> str:
    return json.dumps(value)


def bar(browser, name) -> dict:
    return browser.evaluate(
        f"""(() => {{ const row = document.getElementById({js(name)});
            return {{text: row.innerText, width: row.querySelector('.meter-filled').style.width}}; }})()"""
    )


def test_an_operator_sees_a_proposal_arrive_live_with_verified_votes_and_the_bars_move(browser, live_server, api, trace_data):  # noqa: F811
    staff_member("operator", "olga", password="olga-pass-123")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.navigate(f"{live_server.url}/admin/login/?next=/")
    browser.log_in("olga", "olga-pass-123", then="/")
    browser.wait_for("document.querySelectorAll('main .panel .body .stamp').length === document.querySelectorAll('main .panel').length", "every panel's first refresh")
    before = set(browser.evaluate(ROWS))
    asset_before, portfolio_before = bar(browser, "bar-asset-BTCUSDT"), bar(browser, "bar-portfolio-gross")
    browser.evaluate("window.__same_page = true")  # gone if the page were reloaded

    # An agent's proposal, through the real pipeline: decided, voted by the three nodes, sent to
    # the sandbox venue and filled.
    arrived = post_proposal(api, body=proposal_body(quantity="0.0100")).json()["id"]
    proposal = Proposal.objects.get(id=arrived)
    assert proposal.status == Proposal.Status.FILLED
    votes = Vote.objects.filter(proposal_id=arrived).count()
    assert votes >= 2

    row = f"proposal-{arrived}"
    browser.wait_for(f"{ROWS}.includes({js(row)})", "the new proposal on the next refresh", timeout=15)
    assert set(browser.evaluate(ROWS)) == before | {row}
    assert browser.evaluate("window.__same_page === true")
    assert "filled" in browser.evaluate(f"document.getElementById({js(row)}).innerText")

    # The bars follow the fill on their own refresh.
    browser.wait_for(
        f"document.getElementById('bar-asset-BTCUSDT').innerText !== {js(asset_before['text'])}", "the asset bar to move", timeout=15
    )
    asset_after, portfolio_after = bar(browser, "bar-asset-BTCUSDT"), bar(browser, "bar-portfolio-gross")
    assert float(asset_after["width"].rstrip("%")) > float(asset_before["width"].rstrip("%"))
    assert portfolio_after["text"] != portfolio_before["text"]
    browser.screenshot(SCREENSHOTS / "dashboard-live-proposal-arrived.png")

    # Its trace: every vote's signature checked against the node's registered key, on display.
    browser.evaluate(f"document.getElementById({js(row)}).click()")
    trace = browser.wait_for(f"(document.getElementById({js('trace-' + arrived)}) || {{}}).innerText", "the trace")
    assert trace.count("signature verified ✓") == votes and "✗" not in trace
    browser.screenshot(SCREENSHOTS / "dashboard-live-trace-signatures.png")
