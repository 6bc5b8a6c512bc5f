"""Governing the governance in a real headless Chromium: a risk officer edits and submits a
ruleset draft in the admin and may not approve it herself; a second risk officer reads its
impact replay and publishes it; an operator presses the kill switch on the dashboard and the
resting sandbox order shows `cancelled`. Screenshots under var/screenshots/."""

import json
from pathlib import Path

import pytest

from exchange.models import Order
from exchange.services.sending import order_route
from governance.models import Agent, Proposal, Ruleset, Strategy, TradingState
from governance.services.controls import trading_enable
from ledger.models import AuditEvent
from tests.builders import approved_proposal, post_proposal, proposal_body, staff_member
from tests.dashboard.test_browser import browser  # noqa: F401 (the fixture)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

pytestmark = pytest.mark.integration


def js(value) -> str:
    return json.dumps(value)


def log_in(browser, live_server, name, password, then):
    """A fresh session for `name`: the admin's login form, as a person fills it in."""
    browser.send("Network.clearBrowserCookies")
    browser.navigate(f"{live_server.url}/admin/login/?next={then}")
    browser.log_in(name, password, then=then)


def click_submit(browser, value_starts_with, then_path=None):
    """Click the submit button whose label starts with `value_starts_with`, and wait for the next page."""
    browser.evaluate("window.__leaving = true")
    browser.evaluate(
        f"[...document.querySelectorAll('input[type=submit]')].find(b => b.value.startsWith({js(value_starts_with)})).click()"
    )
    browser.wait_for("window.__leaving === undefined && document.readyState === 'complete'", f"the page after {value_starts_with!r}")
    if then_path:
        assert browser.evaluate("location.pathname") == then_path


@pytest.fixture
def history(api):
    """Two decisions on record: one blocked (trading halted), one approved at confidence 0.95."""
    blocked = post_proposal(api).json()["id"]
    trading_enable(actor="ops", reason="open")
    approved = post_proposal(api, body=proposal_body(quantity="0.0020")).json()["id"]
    return {"blocked": blocked, "approved": approved}


@pytest.fixture
def resting_order(history, monkeypatch):
    """A sandbox buy limit below the market: it rests at the venue."""
    monkeypatch.setattr("exchange.services.sending.quorum_certificate_check", lambda *, proposal: (True, "test"))
    agent = Agent.objects.create(name="desk-agent", token_hash="d" * 64, token_prefix="d")
    agent.strategies.add(Strategy.objects.get(slug="demo"))
    proposal = approved_proposal(agent=agent, limit_price="60000")
    order_route(proposal_id=proposal.id)
    order = Order.objects.get(proposal=proposal)
    assert (order.venue, order.live, order.status) == ("sandbox", False, "open")
    return proposal


def test_four_eyes_rule_change_with_impact_replay_then_the_kill_switch_cancels_the_resting_order(
    browser, live_server, history, resting_order  # noqa: F811
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    staff_member("risk_officer", "rita", password="rita-pass-123")
    staff_member("risk_officer", "remy", password="remy-pass-123")
    staff_member("operator", "otto", password="otto-pass-123")
    in_force = Ruleset.objects.get(status=Ruleset.Status.PUBLISHED)

    # 1. Rita makes a draft from the version in force, raises the minimum confidence, submits it.
    log_in(browser, live_server, "rita", "rita-pass-123", "/admin/governance/ruleset/add/")
    click_submit(browser, "Create the draft")
    draft = Ruleset.objects.get(status=Ruleset.Status.DRAFT)
    assert browser.evaluate("location.pathname") == f"/admin/governance/ruleset/{draft.pk}/change/"
    browser.evaluate("document.getElementById('id_min_confidence').value = '0.99'")
    browser.evaluate("window.__leaving = true; document.querySelector('input[name=_continue]').click()")
    browser.wait_for("window.__leaving === undefined && document.readyState === 'complete'", "the saved draft")
    diff = browser.evaluate("document.getElementById('ruleset-diff').innerText")
    assert "min_confidence" in diff and "0.99" in diff
    click_submit(browser, f"Submit v{draft.version}")
    draft.refresh_from_db()
    assert draft.status == Ruleset.Status.SUBMITTED and draft.submitted_by == "rita"

    # 2. She is refused approving it herself: no Approve button, the reason shown, and a POST anyway is a 403.
    assert browser.evaluate("[...document.querySelectorAll('input[type=submit]')].some(b => b.value.startsWith('Approve'))") is False
    assert "rita" in browser.evaluate("document.getElementById('four-eyes').innerText")
    refused = browser.evaluate(
        f"""(async () => {{
            const form = new FormData(); form.append('csrfmiddlewaretoken', document.querySelector('[name=csrfmiddlewaretoken]').value);
            const r = await fetch('/admin/governance/ruleset/{draft.pk}/approve/', {{method: 'POST', body: form}});
            return {{status: r.status, text: await r.text()}};
        }})()"""
    )
    assert refused["status"] == 403 and refused["text"].startswith("four-eyes: ")
    draft.refresh_from_db()
    assert draft.status == Ruleset.Status.SUBMITTED
    browser.screenshot(SCREENSHOTS / "governance-ruleset-self-approval-refused.png")

    # 3. Remy runs the impact replay, reads it (the approved proposal would now be blocked), and publishes.
    log_in(browser, live_server, "remy", "remy-pass-123", f"/admin/governance/ruleset/{draft.pk}/change/")
    assert browser.evaluate("[...document.querySelectorAll('input[type=submit]')].some(b => b.value.startsWith('Approve'))") is False
    click_submit(browser, "Run impact replay")
    changed = browser.wait_for("(document.getElementById('impact-changed') || {}).innerText", "the impact replay's result", timeout=30)
    assert changed == "1"
    transitions = browser.evaluate("document.getElementById('impact-transitions').innerText")
    assert "approve->block" in transitions
    assert "min_confidence" in browser.evaluate("document.getElementById('impact-rules').innerText")
    browser.wait_for(
        "[...document.querySelectorAll('input[type=submit]')].some(b => b.value.startsWith('Approve'))", "the Approve button"
    )
    browser.screenshot(SCREENSHOTS / "governance-ruleset-impact-replay.png")
    click_submit(browser, f"Approve and publish v{draft.version}")
    draft.refresh_from_db()
    in_force.refresh_from_db()
    assert draft.status == Ruleset.Status.PUBLISHED and draft.published_by == "remy"
    assert str(draft.min_confidence) in ("0.99", "0.990", "0.9900")
    assert "published" in browser.evaluate("document.getElementById('ruleset-review').innerText")
    assert AuditEvent.objects.filter(kind="ruleset.published").exists()

    # 4. Otto presses the kill switch on the dashboard, is asked to confirm, and the resting order ends cancelled.
    log_in(browser, live_server, "otto", "otto-pass-123", "/")
    row = js(f"proposal-{resting_order.id}")
    browser.wait_for(f"!!document.getElementById({row})", "the resting order's row")
    assert "open" in browser.evaluate(f"document.getElementById({row}).innerText")
    browser.evaluate(
        """window.confirm = (message) => { window.__asked = message; return true; };
           document.querySelector('#trading-form input[name=reason]').value = 'runaway agent';
           document.querySelector('#trading-form button.trading-kill').click();"""
    )
    result = browser.wait_for("document.getElementById('trading-result').innerText", "the kill switch's answer")
    assert "kill switch pressed" in result
    assert "cancel every open order" in browser.evaluate("window.__asked")
    browser.wait_for(f"/cancelled/.test(document.getElementById({row}).innerText)", "the order shown cancelled", timeout=20)
    assert "HALTED" in browser.evaluate("document.getElementById('body-controls').innerText")
    browser.wait_for("/TRADING HALTED\\s+runaway agent/.test(document.getElementById('trading-banner').innerText)", "the banner")
    browser.screenshot(SCREENSHOTS / "governance-kill-switch-cancelled.png")

    # The executions: live by default (none), the sandbox ones on their own tab, each labelled,
    # and the tab chosen outlives the timed refresh.
    assert "No live executions yet." in browser.evaluate("document.getElementById('body-activity').innerText")
    browser.evaluate("document.getElementById('activity-tab-sandbox').click()")
    browser.wait_for("!!document.getElementById('activity-sandbox')", "the sandbox tab")
    stamp = browser.evaluate("document.querySelector('#body-activity .stamp').dataset.stamp")
    browser.wait_for(f"document.querySelector('#body-activity .stamp').dataset.stamp !== {js(stamp)}", "a timed refresh", timeout=10)
    labels = browser.evaluate("[...document.querySelectorAll('#activity-sandbox tr.execution')].map(r => r.cells[0].innerText)")
    assert labels and all(label == "SANDBOX" for label in labels)
    browser.screenshot(SCREENSHOTS / "dashboard-sandbox-tab.png")

    assert TradingState.objects.get(pk=1).state == "halted"
    assert Order.objects.get(proposal=resting_order).status == "cancelled"
    assert Proposal.objects.get(pk=resting_order.id).status == "cancelled"
    killed = AuditEvent.objects.get(kind="trading.killed")
    assert killed.actor == "dashboard:otto" and json.loads(killed.payload)["reason"] == "runaway agent"
