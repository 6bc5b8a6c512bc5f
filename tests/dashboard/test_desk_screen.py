"""The desk's wall screen: the trading state as a banner, decisions over time as an SVG chart,
live and sandbox executions on separate tabs, and each vote's signature checked on display."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.models import Decision, Proposal, Vote
from governance.selectors.dashboard import decisions_over_time
from governance.services.controls import trading_halt, trading_reduce_only
from ledger.models import Fill
from tests.builders import order_with_fill, post_proposal, proposal_body
from tests.dashboard.test_views import expanded_trace, partial, text


# --- the trading state banner ---------------------------------------------------------------


def banner(client) -> str:
    return text(client.get("/dashboard/partials/banner/", HTTP_HX_REQUEST="true").content.decode())


def test_the_banner_says_halted_with_the_reason_and_who(staff_client):
    trading_halt(actor="ops-alice", reason="exchange maintenance")
    page = staff_client.get("/").content.decode()
    assert 'id="trading-banner"' in page and 'hx-get="/dashboard/partials/banner/"' in page
    assert 'class="banner banner-halted"' in page
    assert "TRADING HALTED exchange maintenance by ops-alice" in text(page)
    assert "TRADING HALTED exchange maintenance by ops-alice" in banner(staff_client)


def test_the_banner_says_reduce_only_and_enabled(staff_client, trading_enabled):
    assert banner(staff_client).strip().startswith("TRADING ENABLED tests by test since")
    trading_reduce_only(actor="ops-bob", reason="unwinding")
    assert "REDUCE-ONLY: only closes pass unwinding by ops-bob" in banner(staff_client)


def test_the_banner_is_for_staff_only(client, seeded):
    assert client.get("/dashboard/partials/banner/").status_code == 302


# --- decisions over time ----------------------------------------------------------------------


def test_the_chart_counts_decisions_per_hour_and_outcome(trace_data, api):
    # trace_data: one block (halted) and one approve; then a 1,000 BTC order cut down: modify.
    post_proposal(api, body=proposal_body(quantity="1000"))
    assert sorted(Decision.objects.values_list("outcome", flat=True)) == ["approve", "block", "modify"]
    Decision.objects.filter(outcome="block").update(decided_at=timezone.now() - timedelta(hours=3))
    old = Decision.objects.get(outcome="modify")
    Decision.objects.filter(pk=old.pk).update(decided_at=timezone.now() - timedelta(hours=30))

    chart = decisions_over_time()

    assert chart["totals"] == {"approve": 1, "modify": 0, "block": 1}
    assert [(b["outcome"], b["n"]) for b in chart["bars"]] == [("block", 1), ("approve", 1)]
    assert chart["bars"][1]["x"] > chart["bars"][0]["x"]  # the approve is the later hour
    assert chart["bars"][0]["h"] == chart["bars"][1]["h"] > 0


def test_the_chart_panel_is_an_inline_svg_with_no_external_asset(staff_client, trace_data):
    html = partial(staff_client, "decisions")
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert re.findall(r'<rect class="bar bar-(\w+)"', svg) == ["block", "approve"] or sorted(
        re.findall(r'<rect class="bar bar-(\w+)"', svg)
    ) == ["approve", "block"]
    assert "http://www.w3.org/2000/svg" in svg and "src=" not in html and "<script" not in html
    assert "href=" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    legend = text(html)
    assert "approve 1" in legend and "modify 0" in legend and "block 1" in legend


def test_the_chart_says_so_when_there_are_no_decisions(staff_client, seeded):
    assert "no decisions in this window" in text(partial(staff_client, "decisions"))


# --- live and sandbox executions on separate tabs ------------------------------------------


def test_the_default_tab_is_live_and_says_plainly_there_are_no_live_executions_yet(staff_client, trace_data):
    html = partial(staff_client, "activity")
    assert 'id="activity-live"' in html and 'id="activity-sandbox"' not in html
    assert "No live executions yet." in text(html)
    sandbox = Fill.objects.filter(live=False).count()
    assert sandbox >= 1 and not Fill.objects.filter(live=True).exists()
    assert f"the {sandbox} sandbox executions are on the Sandbox tab" in text(html)
    assert "Live (0)" in text(html) and f"Sandbox ({sandbox})" in text(html)
    assert 'class="execution' not in html
    page = staff_client.get("/").content.decode()
    assert '<input type="hidden" id="activity-tab" name="tab" value="live">' in page


def test_the_sandbox_tab_labels_every_row(staff_client, trace_data, api):
    second = Proposal.objects.get(id=post_proposal(api, body=proposal_body(quantity="0.0030")).json()["id"])
    order_with_fill(proposal=second, live=False, trade_id="sbx-trade-2")
    html = partial(staff_client, "activity", tab="sandbox")
    rows = re.findall(r'<tr class="execution execution-sandbox">(.*?)</tr>', html, re.S)
    assert len(rows) == Fill.objects.filter(live=False).count() >= 2
    assert all('<span class="tag sandbox">SANDBOX</span>' in row for row in rows)
    assert "LIVE" not in text(html).replace("Live (0)", "")
    assert "never sent to an exchange" in text(html)


def test_the_live_tab_lists_live_executions_and_only_them(staff_client, trace_data, api):
    live = Proposal.objects.get(id=post_proposal(api, body=proposal_body(quantity="0.0040")).json()["id"])
    order = order_with_fill(proposal=live, live=True, trade_id="weex-trade-1")
    html = partial(staff_client, "activity")
    rows = re.findall(r'<tr class="execution execution-live">(.*?)</tr>', html, re.S)
    assert len(rows) == 1 and '<span class="tag live">LIVE</span>' in rows[0] and order.client_order_id in rows[0]
    assert "No live executions yet" not in html and "SANDBOX</span>" not in rows[0]
    assert "65000.00" in text(rows[0])  # the price to the instrument's tick


def test_an_unknown_tab_shows_the_live_one(staff_client, trace_data):
    assert 'id="activity-live"' in partial(staff_client, "activity", tab="<script>")


# --- each vote's signature, checked on display ------------------------------------------------


def test_each_vote_shows_its_signature_verified_and_a_tampered_one_does_not(staff_client, trace_data):
    approved = trace_data["approved_id"]
    votes = list(Vote.objects.filter(proposal_id=approved))
    assert votes
    trace = text(expanded_trace(partial(staff_client, "proposals", selected=approved), approved))
    assert trace.count("signature verified ✓") == len(votes) and "✗" not in trace

    # Recomputed on each display: a stored verdict changed after signing no longer verifies.
    Vote.objects.filter(pk=votes[0].pk).update(verdict="reject" if votes[0].verdict == "approve" else "approve")
    trace = text(expanded_trace(partial(staff_client, "proposals", selected=approved), approved))
    assert trace.count("signature verified ✗") == 1 and trace.count("signature verified ✓") == len(votes) - 1
