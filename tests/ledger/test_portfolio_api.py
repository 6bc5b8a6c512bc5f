"""GET /api/v1/portfolio/ exactly per CONTRACT.md: realized-only, at entry price, scoped to the agent."""

from rest_framework.test import APIClient

from governance.models import Ruleset
from governance.services.rulesets import ruleset_new_draft, ruleset_publish
from tests.builders import Book


def get_portfolio(client):
    response = client.get("/api/v1/portfolio/")
    assert response.status_code == 200, response.content
    return response.json()


def test_alpha_mode_reports_positions_and_fees_but_realized_pnl_exactly_zero(api):
    demo = Book(strategy="demo")
    demo.buy("0.0010", "65000", fee="0.026")
    demo.buy("0.0030", "66000", fee="0.0792")
    Book(strategy="demo", symbol="ETHUSDT").sell("0.500", "3000", fee="0.6")

    body = get_portfolio(api)
    assert set(body) >= {"mode", "realized_pnl", "fees_paid", "positions", "exposure"}
    assert body["mode"] == "alpha"
    assert body["realized_pnl"] == "0"
    assert body["fees_paid"] == "0.7052"  # 0.026 + 0.0792 + 0.6
    # BTC: 0.001 × 65000 + 0.003 × 66000 = 65 + 198 = 263 over 0.004 → 65750
    assert body["positions"] == [
        {"strategy": "demo", "symbol": "BTCUSDT", "quantity": "0.0040", "average_entry_price": "65750"},
        {"strategy": "demo", "symbol": "ETHUSDT", "quantity": "-0.500", "average_entry_price": "3000"},
    ]
    # exposure at entry price, shorts count positive; nothing marked to market
    assert body["exposure"] == {
        "gross": "1763.0000",
        "by_asset": {"BTCUSDT": "263.0000", "ETHUSDT": "1500.000"},
        "by_strategy": {"demo": "1763.0000"},
    }
    assert "ALPHA" in body["realized_pnl_note"]


def test_an_agent_sees_only_its_own_strategies_and_staff_see_all(api, django_user_model):
    Book(strategy="demo").buy("0.0010", "65000")
    Book(strategy="someone-else").buy("0.0020", "60000", fee="5")

    body = get_portfolio(api)
    assert [p["strategy"] for p in body["positions"]] == ["demo"]
    assert body["exposure"]["by_strategy"] == {"demo": "65.0000"}
    assert body["fees_paid"] == "0"

    staff = APIClient()
    staff.force_login(django_user_model.objects.create_user("risk", password="x", is_staff=True))
    everything = get_portfolio(staff)
    assert [p["strategy"] for p in everything["positions"]] == ["demo", "someone-else"]
    assert everything["fees_paid"] == "5"

    plain = APIClient()
    plain.force_login(django_user_model.objects.create_user("viewer", password="x"))
    assert get_portfolio(plain)["positions"] == []


def test_full_mode_reports_realized_pnl_and_execution_quality_from_live_and_sandbox_fills_apart(api):
    current = Ruleset.objects.filter(status="published").order_by("-version").first()
    draft = ruleset_new_draft(source=current, actor="test")
    draft.mode = "full"
    draft.save()
    ruleset_publish(ruleset=draft, actor="test")

    live = Book(strategy="demo", venue="weex", live=True)
    live.buy("1", "101", fee="0.1", reference_price="100")  # paid 100 bps above the reference
    live.close_sell("1", "110", fee="0.1", reference_price="111")  # received 90.09 bps below it
    Book(strategy="demo", symbol="ETHUSDT").buy("2", "50", reference_price="50")  # sandbox, at the reference

    body = get_portfolio(api)
    assert body["mode"] == "full"
    # (110 − 101) × 1 − 0.1 − 0.1 = 8.8
    assert body["realized_pnl"] == "8.8"
    assert body["realized_pnl_by_strategy"] == {"demo": "8.8"}
    quality = body["execution_quality"]
    # (101 − 100)/100 × 1e4 = 100 bps; −(110 − 111)/111 × 1e4 = 90.09 bps; weighted by quantity 1:1 → 95.05
    assert quality["live"] == {
        "demo": {"BTCUSDT": {"fills": 2, "quantity": "2", "slippage_bps": "95.05", "fees": {"USDT": "0.2"}}}
    }
    assert quality["sandbox"] == {
        "demo": {"ETHUSDT": {"fills": 1, "quantity": "2", "slippage_bps": "0.00", "fees": {"USDT": "0"}}}
    }
    assert body["positions"] == [{"strategy": "demo", "symbol": "ETHUSDT", "quantity": "2", "average_entry_price": "50"}]


def test_the_portfolio_needs_authentication(db):
    assert APIClient().get("/api/v1/portfolio/").status_code == 401


def test_realized_pnl_per_day_is_served_for_the_agents_strategies_only(api):
    from datetime import datetime
    from datetime import timezone as dt_timezone

    mine, theirs = Book(strategy="demo"), Book(strategy="someone-else")
    for book in (mine, theirs):
        book.buy("2", "100", at=datetime(2026, 3, 2, 10, tzinfo=dt_timezone.utc))
        book.close_sell("1", "103", fee="0.5", at=datetime(2026, 3, 2, 11, tzinfo=dt_timezone.utc))  # 3 − 0.5
        book.close_sell("1", "99", at=datetime(2026, 3, 4, 11, tzinfo=dt_timezone.utc))  # −1

    body = api.get("/api/v1/portfolio/realized/?by=day").json()
    assert body["by"] == "day"
    assert {day: v["amount"] for day, v in body["realized_pnl"].items()} == {"2026-03-02": "2.5", "2026-03-04": "-1"}
    body = api.get("/api/v1/portfolio/realized/?by=strategy&since=2026-03-03").json()
    assert body["realized_pnl"] == {"demo": {"amount": "-1", "gross": "-1", "fees": "0", "quantity": "1", "closes": 1}}


def test_realized_pnl_refuses_an_unknown_grouping_or_a_bad_date(api):
    for query, field in (
        ("by=week", "by"), ("since=yesterday", "since"), ("until=2026-13-01", "until"), ("x=1", "x"),
        # ISO 8601 but not the schema's YYYY-MM-DD (date.fromisoformat alone takes them)
        ("since=20260303", "since"), ("until=2026-W10-1", "until"),
    ):
        response = api.get(f"/api/v1/portfolio/realized/?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "invalid"
        assert set(response.json()["error"]["fields"]) == {field}
