import re
from datetime import timedelta
from html import unescape

import pytest
from django.utils import timezone

from exchange.models import Order
from governance.models import Proposal, Vote, WorkerHeartbeat
from governance.services.controls import breaker_trip, trading_halt
from ledger.models import Fill
from tests.builders import order_with_fill

PARTIALS = ["health", "nodes", "controls", "ruleset", "portfolio", "allocation", "decisions", "activity", "proposals"]


def partial(client, name, **params):
    response = client.get(f"/dashboard/partials/{name}/", params, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def text(html: str) -> str:
    """The visible text, whitespace collapsed, so assertions read like the page."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def expanded_trace(html: str, proposal_id: str) -> str:
    """The expanded trace row of a proposal (only one row is ever expanded)."""
    start = html.index(f'<tr class="trace" id="trace-{proposal_id}">')
    return html[start : html.index("</tbody>\n</table>\n<p class=\"muted\">The latest", start)]


@pytest.mark.django_db
def test_anonymous_visitor_is_redirected_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/"


@pytest.mark.django_db
@pytest.mark.parametrize("name", PARTIALS)
def test_anonymous_partial_request_gets_no_data(client, name):
    response = client.get(f"/dashboard/partials/{name}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_an_expired_session_sends_the_whole_page_to_login_not_into_a_panel(client):
    response = client.get("/dashboard/partials/health/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/admin/login/?next=%2F"
    assert response.content == b""


def test_a_logged_in_user_who_is_not_staff_is_refused(client, django_user_model, seeded):
    user = django_user_model.objects.create_user(username="agent-owner", password="x", is_staff=False)
    client.force_login(user)
    assert client.get("/").status_code == 302
    assert client.get("/dashboard/partials/portfolio/").status_code == 302


def test_staff_sees_every_panel_wired_to_a_partial_refreshed_every_3s(staff_client):
    response = staff_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<script src="/static/governance/htmx.min.js"' in html
    for name in PARTIALS:
        panel = re.search(rf'<div class="body" id="body-{name}"(.*?)>', html, re.S)
        assert panel, name
        assert f'hx-get="/dashboard/partials/{name}/"' in panel.group(1)
        assert 'hx-trigger="load, every 3s"' in panel.group(1)
    assert "no-cache" in response["Cache-Control"]


def test_every_partial_renders_for_staff(staff_client, trace_data):
    for name in PARTIALS:
        assert "as of " in partial(staff_client, name)


def test_header_names_the_sandbox_venue_and_says_orders_are_not_live(staff_client, settings):
    settings.CHRONOSX_VENUE = "sandbox"
    page = text(staff_client.get("/").content.decode())
    assert "Venue: sandbox SANDBOX Orders live: NO" in page


def test_header_warns_when_orders_are_live_on_weex(staff_client, settings):
    settings.CHRONOSX_VENUE, settings.WEEX_DEMO = "weex", False
    page = text(staff_client.get("/").content.decode())
    assert "Venue: weex WEEX LIVE Orders live: YES" in page


def test_header_says_weex_demo_orders_are_not_live(staff_client, settings):
    settings.CHRONOSX_VENUE, settings.WEEX_DEMO = "weex", True
    page = text(staff_client.get("/").content.decode())
    assert "Venue: weex WEEX DEMO Orders live: NO" in page


def test_health_panel_reports_database_broker_and_node_count(staff_client):
    page = text(partial(staff_client, "health"))
    assert "Database ok" in page
    assert "Broker embedded" in page
    assert "MPC nodes alive 0 of 3 (quorum needs 2)" in page
    assert "DOWN NOT accepting proposals" in page


def test_nodes_panel_shows_which_node_is_alive_and_its_last_heartbeat(staff_client):
    now = timezone.now()
    WorkerHeartbeat.objects.create(kind="risk", last_heartbeat=now, key_id="risk-k1", host="node-a")
    WorkerHeartbeat.objects.create(kind="portfolio", last_heartbeat=now - timedelta(minutes=5), key_id="pf-k1")
    html = partial(staff_client, "nodes")
    risk = text(re.search(r'<tr class="node node-risk">.*?</tr>', html, re.S).group(0))
    portfolio = text(re.search(r'<tr class="node node-portfolio">.*?</tr>', html, re.S).group(0))
    execution = text(re.search(r'<tr class="node node-execution">.*?</tr>', html, re.S).group(0))
    assert f"risk alive {now:%H:%M:%S}" in risk and "risk-k1 node-a" in risk
    assert "portfolio down" in portfolio and "(300 s ago)" in portfolio
    assert "execution down never" in execution


def test_controls_panel_shows_who_halted_trading_why_and_tripped_breakers(staff_client):
    trading_halt(actor="ops-alice", reason="venue maintenance")
    breaker_trip(name="venue_errors", actor="router", reason="5 errors in 60 s")
    page = text(partial(staff_client, "controls"))
    assert "Trading: HALTED Why venue maintenance Who ops-alice Since" in page
    assert "1 tripped" in page
    assert "venue_errors TRIPPED 5 errors in 60 s router" in page
    assert "venue_latency ok" in page


def test_ruleset_panel_shows_the_published_parameters(staff_client):
    page = text(partial(staff_client, "ruleset"))
    assert "Ruleset v1 ALPHA" in page
    for expected in [
        "Minimum confidence 0.60",
        "Latency guard (max signal age) 60 s",
        "Slippage guard (max expected) 25 bps",
        "Price collar (limit vs reference) 100 bps",
        "Max order notional 10000",
        "Portfolio exposure ceiling (gross) 2000000",
        "Max open positions 500",
        "Order rate 600 / min per strategy",
        "MPC quorum 2 of 3",
        "BTCUSDT 100 1000000",
        "ETHUSDT 1000 1000000",
        "demo 1000000",
    ]:
        assert expected in page, expected


@pytest.mark.django_db
def test_ruleset_panel_says_so_when_nothing_is_published(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="op", is_staff=True))
    assert "No published ruleset" in partial(client, "ruleset")


def test_trace_lists_the_latest_proposals_with_their_decisions(staff_client, trace_data):
    html = partial(staff_client, "proposals")
    blocked = text(re.search(rf'<tr class="proposal[^"]*" id="proposal-{trace_data["blocked_id"]}".*?</tr>', html, re.S).group(0))
    approved = text(re.search(rf'<tr class="proposal[^"]*" id="proposal-{trace_data["approved_id"]}".*?</tr>', html, re.S).group(0))
    assert "demo BTCUSDT buy 0.0010 limit 65000 0.95 blocked block trading_enabled" in blocked
    assert "BTCUSDT buy 0.0020" in approved and " approve none " in approved
    # The sandbox router may have filled it too; every order shows as SANDBOX, none as LIVE.
    orders = Order.objects.filter(proposal_id=trace_data["approved_id"])
    assert approved.count("SANDBOX") == orders.count() >= 1 and "LIVE" not in approved
    fills = Fill.objects.filter(order__proposal_id=trace_data["approved_id"]).count()
    assert f"({fills} fill{'s' if fills > 1 else ''})" in approved
    # Newest first.
    assert html.index(trace_data["approved_id"]) < html.index(trace_data["blocked_id"])
    # Nothing expanded until a row is clicked.
    assert 'class="trace"' not in html


def test_expanding_a_row_shows_the_failed_checks_with_details(staff_client, trace_data):
    html = partial(staff_client, "proposals", selected=trace_data["blocked_id"])
    trace_html = expanded_trace(html, trace_data["blocked_id"])
    trace = text(trace_html)
    assert re.search(
        r'<ul class="failed-checks">\s*<li><strong>trading_enabled</strong>: trading is halted: maintenance window</li>\s*</ul>',
        trace_html,
    )
    assert len(re.findall("<li>", trace_html)) == 1
    assert "min_confidence pass confidence 0.95 >= minimum 0.60" in trace
    assert "blocked by rules: no vote taken" in trace
    assert "no orders" in trace
    # The selection is remembered out of band so the next refresh keeps the row open,
    # and the expanded row's own link collapses it.
    assert f'id="trace-selected" name="selected" value="{trace_data["blocked_id"]}" hx-swap-oob="true"' in html
    assert 'hx-get="/dashboard/partials/proposals/?selected="' in html


def test_a_malformed_selection_expands_nothing(staff_client, trace_data):
    html = partial(staff_client, "proposals", selected='"><script>alert(1)</script>')
    assert 'class="trace"' not in html
    assert 'name="selected" value=""' in html
    assert "<script>" not in html


def test_every_sandbox_order_and_fill_carries_a_sandbox_label(staff_client, trace_data):
    html = partial(staff_client, "proposals", selected=trace_data["approved_id"])
    trace = expanded_trace(html, trace_data["approved_id"])
    order_heads = re.findall(r'<table class="grid-table order">\s*<thead><tr><th colspan="2">(.*?)</th>', trace, re.S)
    fill_rows = re.findall(r'<tr class="fill">(.*?)</tr>', trace, re.S)
    assert len(order_heads) >= 1 and len(fill_rows) >= 1
    for chunk in order_heads + fill_rows:
        assert '<span class="tag sandbox">SANDBOX</span>' in chunk
        assert "LIVE" not in chunk
    assert "sbx-trade-1" in text(trace)


def test_a_live_fill_is_labelled_live_not_sandbox(staff_client, trace_data):
    proposal = Proposal.objects.select_related("instrument").get(id=trace_data["approved_id"])
    order_with_fill(proposal=proposal, live=True, trade_id="weex-trade-9")
    html = partial(staff_client, "proposals", selected=trace_data["approved_id"])
    row = re.search(r'<tr class="fill">((?:(?!</tr>).)*weex-trade-9.*?)</tr>', html, re.S).group(1)
    assert '<span class="tag live">LIVE</span>' in row and "SANDBOX" not in row


def test_portfolio_shows_realized_pnl_exactly_0_with_the_alpha_reason(staff_client, trace_data):
    html = partial(staff_client, "portfolio")
    page = text(html)
    assert re.search(r'<strong class="num" id="realized-pnl">0</strong>', html)
    assert "Why 0: ALPHA mode: exits are disabled" in page
    assert "nothing is marked to market" in page or "not marked to market" in page
    fills = list(Fill.objects.all())
    assert all(not f.live for f in fills)
    fees = sum(f.fee for f in fills)
    exposure = sum(f.quantity * f.price for f in fills)  # buys only: all open, at entry price
    assert f"Fees paid (quote currency) {fees}" in page
    assert f"{len(fills)} of {len(fills)} fills are sandbox fills" in page
    assert f"SANDBOX USDT {fees}" in page
    assert f"By asset Exposure BTCUSDT {exposure}" in page
    assert f"By strategy Exposure demo {exposure}" in page


def test_operator_supplied_text_is_escaped(staff_client):
    trading_halt(actor="<b>mallory</b>", reason="<script>alert('x')</script>")
    html = partial(staff_client, "controls")
    assert "<script>alert" not in html and "<b>mallory" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_expanding_an_approved_row_shows_each_quorum_vote(staff_client, trace_data):
    votes = list(Vote.objects.filter(proposal_id=trace_data["approved_id"]))
    assert votes, "the approved proposal went through the quorum stage"
    trace = text(expanded_trace(partial(staff_client, "proposals", selected=trace_data["approved_id"]), trace_data["approved_id"]))
    assert "All 18 checks passed." in trace  # the seeded ruleset carries the loss limits
    approvals = sum(v.verdict == "approve" for v in votes)
    assert f"{approvals} approvals, 2 required ({len(votes)} of 3 nodes voted) — quorum met" in trace
    for vote in votes:
        assert f"{vote.node} {vote.verdict} {vote.cast_at:%H:%M:%S}" in trace
        assert vote.key_id in trace and text(vote.reason) in trace
    assert "does not verify" not in trace
