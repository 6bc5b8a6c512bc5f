"""The allocation panel: each strategy's weight and budget, its use of that budget, its
realized PnL and its drawdown, against a recorded history whose numbers are worked out by
hand; the budget is the one a decision applies."""

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.utils import timezone

from governance.selectors.controls import ruleset_current
from governance.selectors.dashboard import allocation_status
from governance.services.rulesets import ruleset_new_draft, ruleset_publish
from tests.builders import Book, approved_proposal, post_proposal, proposal_body
from tests.dashboard.test_views import partial, text

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=dt_timezone.utc)


def at(day, hour):
    return datetime(2026, 3, day, hour, 0, tzinfo=dt_timezone.utc)


def publish(**fields):
    """The ruleset in force, republished with these fields changed."""
    draft = ruleset_new_draft(source=ruleset_current(), actor="test")
    for name, value in fields.items():
        setattr(draft, name, value)
    draft.save()
    return ruleset_publish(ruleset=draft, actor="test")


FIXED = {
    "mode": "full",
    "allocation_policy": "fixed",
    "portfolio_risk_budget": "100",
    "allocation_weights": "demo=0.6,trend=0.4",
}


@pytest.fixture
def history(seeded):
    """demo (BTCUSDT) realizes +10 on 1 March, then -4 and +1 today (5 March): 7 in total,
    -3 today, a high-water mark of 10 and a drawdown of -3; 0.5 BTC stays open at 100 (50 of
    exposure). trend (ETHUSDT) realizes -2 on 3 March: drawdown -2 from a mark of 0. No fees."""
    demo = Book(strategy="demo")
    demo.buy("2.5", "100", at=at(1, 10))
    demo.close_sell("1", "110", at=at(1, 11))  # +10
    demo.close_sell("0.5", "92", at=at(5, 9))  # -4
    demo.close_sell("0.5", "102", at=at(5, 10))  # +1
    trend = Book(strategy="trend", symbol="ETHUSDT")
    trend.buy("1", "10", at=at(3, 10))
    trend.close_sell("1", "8", at=at(3, 11))  # -2
    return demo, trend


def rows(status):
    return {row["strategy"]: row for row in status["rows"]}


def test_fixed_weights_give_each_strategy_its_share_and_its_pnl_and_drawdown_from_the_ledger(history, api):
    approved_proposal(agent=api.agent, quantity="0.0002")  # demo: 0.0002 BTC at 65000 = 13 still working
    status = allocation_status(ruleset=publish(**FIXED), now=NOW)
    assert status["policy"] == "fixed" and status["portfolio_risk_budget"] == "100.00"
    demo, trend = rows(status)["demo"], rows(status)["trend"]
    assert (demo["weight"], demo["weight_percent"], demo["budget"]) == ("0.6", "60", "60.00")
    # Use as the strategy_budget check counts it: 50 filled at entry price + 13 reserved.
    assert (demo["use"]["filled"], demo["use"]["reserved"], demo["used"], demo["use"]["percent"]) == ("50.0", "13.0000", "63.00", "105.0")
    assert demo["use"]["over"]
    assert (demo["today"], demo["total"], demo["high_water_mark"], demo["drawdown"]) == ("-3.00", "7.00", "10.00", "-3.00")
    assert (trend["weight"], trend["budget"], trend["used"], trend["use"]["percent"]) == ("0.4", "40.00", "0.00", "0.0")
    assert (trend["today"], trend["total"], trend["high_water_mark"], trend["drawdown"]) == ("0.00", "-2.00", "0.00", "-2.00")


def test_a_strategy_without_a_weight_has_no_budget(history):
    Book(strategy="scalper")
    row = rows(allocation_status(ruleset=publish(**FIXED), now=NOW))["scalper"]
    assert (row["weight"], row["budget"], row["use"]["cap"]) == (None, "0.00", "0")


@pytest.mark.parametrize(
    "window_days, scale_max, demo_budget, trend_budget",
    [
        # The last 3 days: demo -3 (the +10 of 1 March is outside), 60 x (1 - 3/60) = 57;
        # trend -2, 40 x (1 - 2/40) = 38.
        (3, "1.5", "57.00", "38.00"),
        # The last 30 days: demo +7, 60 x (1 + 7/60) = 67, held at the bound 1.1: 66.
        (30, "1.1", "66.00", "38.00"),
    ],
)
def test_weights_scaled_by_trailing_pnl_move_the_budgets_within_their_bounds(history, window_days, scale_max, demo_budget, trend_budget):
    ruleset = publish(**{**FIXED, "allocation_policy": "pnl_scaled", "allocation_window_days": window_days,
                         "allocation_scale_min": "0.5", "allocation_scale_max": scale_max})
    by_strategy = rows(allocation_status(ruleset=ruleset, now=NOW))
    assert (by_strategy["demo"]["budget"], by_strategy["trend"]["budget"]) == (demo_budget, trend_budget)
    assert by_strategy["trend"]["trailing_pnl"] == "-2.00"


def test_the_budget_shown_is_the_one_the_strategy_budget_check_applies(trading_enabled, api):
    now = timezone.now()
    demo = Book(strategy="demo")
    demo.buy("1", "100", at=now.replace(microsecond=0) - timedelta(days=2))
    demo.close_sell("1", "80", at=now.replace(microsecond=0) - timedelta(days=1))  # -20 in the window
    publish(**{**FIXED, "portfolio_risk_budget": "1000", "allocation_policy": "pnl_scaled", "allocation_window_days": 30,
               "allocation_scale_min": "0.5", "allocation_scale_max": "1.5"})
    shown = rows(allocation_status(ruleset=ruleset_current()))["demo"]["budget_exact"]
    assert shown == "580.00"  # 600 x (1 - 20/600)
    created = post_proposal(api, proposal_body(quantity="0.0001")).json()
    decided = api.get(f"/api/v1/proposals/{created['id']}/").json()["decision"]
    detail = next(c["detail"] for c in decided["checks"] if c["rule"] == "strategy_budget")
    assert detail.endswith(f"maximum {shown}"), detail


def test_the_panel_shows_a_row_per_strategy_with_its_use_bar(staff_client, history):
    publish(**FIXED)
    page = partial(staff_client, "allocation")
    assert "fixed allocation of the portfolio risk budget 100.00" in text(page)
    row = re.search(r'<tr class="allocation-row" id="allocation-demo">.*?</tr>', page, re.S).group(0)
    # Today is the test run's own UTC day, not 5 March: demo realized nothing today.
    assert text(row).split() == ["demo", "0.6", "(60", "%)", "60.00", "50.00", "83.3", "%", "0.00", "7.00", "10.00", "-3.00"]
    assert 'class="meter-filled" style="width:83.3%"' in row
    assert re.search(r'id="allocation-trend">.*?40\.00', page, re.S)


def test_without_an_allocation_policy_the_panel_says_so_and_shows_the_budgets_in_force(staff_client, seeded):
    page = text(partial(staff_client, "allocation"))
    assert "No allocation policy in ruleset v1 (allocation_policy none): no strategy has a weight." in page
    assert "demo — 1000000.00" in page  # its own budget in the seeded ruleset, no invented weight
    assert "Realized PnL is 0 by design: ALPHA mode" in page


def test_the_panel_is_for_staff_only(client, django_user_model, seeded):
    assert client.get("/dashboard/partials/allocation/").status_code == 302
    client.force_login(django_user_model.objects.create_user(username="agent-owner", password="x", is_staff=False))
    response = client.get("/dashboard/partials/allocation/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert "allocation" not in response.content.decode()


def test_amounts_stay_decimal_to_the_exact_ledger_value(history):
    demo = rows(allocation_status(ruleset=publish(**FIXED), now=NOW))["demo"]
    assert Decimal(demo["total_exact"]) == Decimal("7") and Decimal(demo["drawdown_exact"]) == Decimal("-3")


def test_the_portfolio_panels_strategy_bars_use_the_allocated_budget_too(staff_client, history):
    publish(**FIXED)
    html = partial(staff_client, "portfolio")
    demo = text(re.search(r'<tr class="bar bar-strategy" id="bar-strategy-demo">.*?</tr>', html, re.S).group(0))
    assert demo.split() == ["strategy", "demo", "50.0", "0", "60.00", "83.3", "%"]  # not its own 1000000 row
    trend = text(re.search(r'<tr class="bar bar-strategy" id="bar-strategy-trend">.*?</tr>', html, re.S).group(0))
    assert trend.split()[4] == "40.00"
