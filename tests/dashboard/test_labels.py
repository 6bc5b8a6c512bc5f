"""Labels and numbers that misled (issue 12), as regression tests: the quorum column, the
average entry price, the open-position wording, the venue header and the ALPHA PnL note."""

import re

import pytest

from governance.models import Ruleset
from ledger.models import RealizedPnl
from tests.builders import Book, approved_proposal
from tests.dashboard.test_views import partial, text


def test_the_quorum_column_says_approvals_required_and_votes_received_never_3_of_2(staff_client, trace_data):
    html = partial(staff_client, "proposals")
    row = re.search(rf'<tr class="proposal[^"]*" id="proposal-{trace_data["approved_id"]}".*?</tr>', html, re.S).group(0)
    quorum = text(re.search(r'<td class="quorum">(.*?)</td>', row, re.S).group(1)).strip()
    assert quorum == "3 approvals, 2 required (3 of 3 nodes voted) met"
    assert "needed" not in text(html)


def test_the_average_entry_price_is_shown_to_the_instruments_tick_with_the_exact_value_on_hover(staff_client, seeded):
    book = Book(strategy="demo")
    book.buy("0.0001", "65000")
    book.buy("0.0002", "65000.01")  # average 65000.00666…: 28 digits in the ledger
    html = partial(staff_client, "portfolio")
    row = re.search(r'<tr class="position">.*?</tr>', html, re.S).group(0)
    assert re.search(r'title="65000\.00666666666666666666667">65000\.01</td>', row), row


def test_open_position_and_open_quantity_mean_what_the_rules_details_mean(staff_client, api):
    book = Book(strategy="demo")
    book.buy("0.2317", "65000")
    approved_proposal(agent=api.agent, quantity="0.0020")  # a buy still working at the venue
    html = partial(staff_client, "portfolio")
    cells = [text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", re.search(r'<tr class="position">(.*?)</tr>', html, re.S).group(1), re.S)]
    assert cells[:6] == ["demo", "BTCUSDT", "0.2317", "0.0020", "0.2337", "0.2317"]
    page = text(html)
    assert "Filled + working Open position Open quantity Avg entry" in page
    assert "the open position includes approved orders still working" in page


@pytest.mark.parametrize(
    "base_url, demo, header",
    [
        ("http://127.0.0.1:8765", False, "Venue: weex WEEX (custom endpoint: 127.0.0.1) Orders live: NOT TO WEEX — WEEX_BASE_URL sends every order to 127.0.0.1"),
        ("http://weex-test.local/api", True, "Venue: weex WEEX (custom endpoint: weex-test.local) Orders live: NOT TO WEEX — WEEX_BASE_URL sends every order to weex-test.local in demo mode"),
        ("https://api-spot.weex.com", False, "Venue: weex WEEX LIVE Orders live: YES — orders are sent to WEEX with real funds"),
        (None, True, "Venue: weex WEEX DEMO Orders live: NO"),
    ],
)
def test_the_header_names_exactly_where_orders_go(staff_client, settings, base_url, demo, header):
    settings.CHRONOSX_VENUE, settings.WEEX_DEMO, settings.WEEX_BASE_URL = "weex", demo, base_url
    page = text(staff_client.get("/").content.decode())
    assert header in page
    if base_url and "weex.com" not in base_url:
        assert "real funds" not in page


def test_pnl_realized_under_full_stays_visible_after_alpha_with_a_note_that_says_so(staff_client, api):
    book = Book(strategy="demo")
    book.buy("0.0100", "65000", fee="0.01")
    book.close_sell("0.0100", "64998", fee="0.0101")
    amount = RealizedPnl.objects.get().amount
    assert amount < 0
    assert Ruleset.objects.filter(status="published").first().mode == "alpha"

    html = partial(staff_client, "portfolio")
    page = text(html)
    assert re.search(rf'id="realized-pnl">{re.escape(str(amount))}</strong>', html)
    assert "Why 0" not in page
    assert "Realized by 1 close from" in page
    assert "ALPHA mode is in force now: exits are disabled, so nothing more is realized; this figure was realized before" in page

    note = api.get("/api/v1/portfolio/").json()["realized_pnl_note"]
    assert "no PnL is realized" not in note
    assert "no more PnL is realized" in note and "1 earlier closes" in note


def test_in_alpha_0_by_design_shows_only_while_nothing_was_ever_realized(staff_client, api):
    Book(strategy="demo").buy("0.0100", "65000")
    assert "Why 0: ALPHA mode" in text(partial(staff_client, "portfolio"))
    assert api.get("/api/v1/portfolio/").json()["realized_pnl_note"].endswith("so no PnL is realized")


def test_utilisation_bars_count_reserved_exposure_against_each_cap(staff_client, api):
    Book(strategy="demo").buy("0.0100", "65000")  # 650 filled
    approved_proposal(agent=api.agent, quantity="0.0020")  # 130 reserved at its limit price
    html = partial(staff_client, "portfolio")
    asset = text(re.search(r'<tr class="bar bar-asset" id="bar-asset-BTCUSDT">.*?</tr>', html, re.S).group(0))
    assert asset.split() == ["asset", "BTCUSDT", "650.0000", "130.0000", "1000000", "0.1", "%"]
    gross = text(re.search(r'<tr class="bar bar-portfolio" id="bar-portfolio-gross">.*?</tr>', html, re.S).group(0))
    assert gross.split()[2:6] == ["650.0000", "130.0000", "2000000", "0.0"]
    assert re.search(r'id="bar-strategy-demo"', html)
