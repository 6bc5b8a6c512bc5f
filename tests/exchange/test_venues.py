"""The venues on their own: CcxtVenue (ccxt's weex class against the WEEX test server) and SandboxVenue."""

from datetime import timedelta
from decimal import Decimal

import ccxt
import pytest
from django.utils import timezone

from exchange.services.breakers import venue_call_failed, venue_call_ok, venue_probe
from exchange.venues import (
    OrderRequest,
    SandboxVenue,
    VenueNotConfigured,
    VenueOrderNotFound,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
    VenueUnknown,
    venue_current,
)
from exchange.venues.base import Redactor
from exchange.venues.ccxt_venue import CcxtVenue, error_summary
from governance.models import VenueHealth
from tests.builders import API_KEY, PASSPHRASE, SECRET, posts
from tests.weex_server import sign


def request(cid="cx-test-1", **overrides):
    fields = dict(
        client_order_id=cid,
        symbol="BTCUSDT",
        side="buy",
        order_type="limit",
        quantity=Decimal("0.001"),
        limit_price=Decimal("65000"),
        reference_price=Decimal("65000"),
        expected_slippage_bps=Decimal("1"),
    )
    fields.update(overrides)
    return OrderRequest(**fields)


@pytest.fixture
def venue(exch_seeded, weex):
    return venue_current()


def test_ccxt_weex_places_an_order_whose_signature_the_server_verifies(venue, weex):
    answer = venue.place(request=request())

    [post] = posts(weex)
    assert post.path == "/api/v3/order"
    assert post.headers["ACCESS-KEY"] == API_KEY and post.headers["ACCESS-PASSPHRASE"] == PASSPHRASE
    # Recomputed here from the raw request, exactly as WEEX checks it.
    prehash = post.headers["ACCESS-TIMESTAMP"] + "POST" + post.path + post.body
    assert post.headers["ACCESS-SIGN"] == sign(SECRET, prehash)
    assert post.json()["newClientOrderId"] == "cx-test-1"
    assert weex.order_count("cx-test-1") == 1
    assert answer.venue_order_id == str(weex.orders_by_client_id["cx-test-1"]["orderId"])
    assert weex.rejected_auth == 0


def test_a_request_signed_with_a_wrong_secret_is_refused_and_stores_nothing(exch_seeded, weex):
    wrong = CcxtVenue(
        name="weex", exchange_id="weex", api_key=API_KEY, secret="not-the-secret", password=PASSPHRASE,
        base_url=weex.url, timeout_ms=250, rate_limit=False,
    )
    with pytest.raises(VenueRejected) as refused:
        wrong.place(request=request("cx-wrong-secret"))

    assert refused.value.summary.startswith("AuthenticationError")
    assert refused.value.code == "-1047"
    assert weex.rejected_auth == 1
    assert weex.order_count("cx-wrong-secret") == 0
    assert len(posts(weex)) == 1  # it did reach the server, which refused it


def test_it_looks_an_order_up_by_client_id_and_reads_its_fills(venue, weex):
    venue.place(request=request("cx-look"))

    found = venue.fetch_order_by_client_id(symbol="BTCUSDT", client_order_id="cx-look")
    fills = venue.fetch_fills(symbol="BTCUSDT", venue_order_id=found.venue_order_id)

    assert (found.status, found.filled_quantity, found.average_price) == ("filled", Decimal("0.001"), Decimal("65000"))
    [trade] = weex.trades
    assert [(f.trade_id, f.price, f.quantity, f.fee, f.fee_asset) for f in fills] == [
        (str(trade["id"]), Decimal("65000"), Decimal("0.001"), Decimal("0.065"), "USDT")
    ]


@pytest.mark.parametrize("market", ["spot", "swap"])
@pytest.mark.parametrize("contract_not_found", ["order_error", "code"])
def test_an_unknown_client_id_is_a_positive_not_found(exch_seeded, weex, settings, market, contract_not_found):
    settings.CHRONOSX_WEEX_MARKET = market
    weex.contract_not_found = contract_not_found
    with pytest.raises(VenueOrderNotFound):
        venue_current().fetch_order_by_client_id(symbol="BTCUSDT", client_order_id="cx-never-sent")


def test_a_failed_look_up_is_not_a_not_found(venue, weex):
    venue.place(request=request("cx-lookup-5xx"))
    weex.inject_lookup("5xx")
    with pytest.raises(VenueUnavailable):
        venue.fetch_order_by_client_id(symbol="BTCUSDT", client_order_id="cx-lookup-5xx")
    weex.inject_lookup("timeout")
    with pytest.raises(VenueUnavailable):
        venue.fetch_order_by_client_id(symbol="BTCUSDT", client_order_id="cx-lookup-5xx")


@pytest.mark.parametrize(
    "fault, outcome",
    [
        ("timeout_after_accept", VenueUnknown),
        ("5xx_after_accept", VenueUnknown),
        ("504_after_accept", VenueUnknown),
        ("503_before_accept", VenueUnknown),
        ("429", VenueRateLimited),
        ("reject", VenueRejected),
        ("insufficient", VenueRejected),
    ],
)
def test_each_venue_fault_maps_to_what_the_router_may_conclude(venue, weex, fault, outcome):
    weex.inject(fault)
    with pytest.raises(outcome):
        venue.place(request=request(f"cx-{fault}"))


def test_amounts_are_rounded_down_to_the_venue_precision_never_up(exch_seeded, weex, settings):
    spot = venue_current()
    assert spot.quantity_for(symbol="BTCUSDT", quantity=Decimal("0.00059")) == Decimal("0.0005")
    assert spot.quantity_for(symbol="BTCUSDT", quantity=Decimal("0.00009")) == 0
    settings.CHRONOSX_WEEX_MARKET = "swap"
    swap = venue_current()
    assert swap.quantity_for(symbol="BTCUSDT", quantity=Decimal("0.0019")) == Decimal("0.001")
    # Limit prices go the cautious way: a buy never pays more, a sell never takes less.
    assert swap.price_for(symbol="BTCUSDT", side="buy", price=Decimal("65000.05")) == Decimal("65000")
    assert swap.price_for(symbol="BTCUSDT", side="sell", price=Decimal("65000.05")) == Decimal("65000.1")


def test_the_swap_market_sends_a_contract_order(exch_seeded, weex, settings):
    settings.CHRONOSX_WEEX_MARKET = "swap"
    venue_current().place(request=request("cx-swap", quantity=Decimal("0.002")))

    [post] = posts(weex)
    assert post.path == "/capi/v3/order"
    assert post.json()["positionSide"] == "LONG"
    assert weex.orders_by_client_id["cx-swap"]["kind"] == "contract"


def test_demo_mode_is_ccxt_sandbox_mode_and_swap_only(exch_seeded, settings, weex):
    settings.WEEX_DEMO = True
    with pytest.raises(VenueNotConfigured):
        venue_current()  # spot has no demo trading on WEEX
    settings.CHRONOSX_WEEX_MARKET = "swap"
    venue = venue_current()
    assert venue.live is False
    assert venue.client.options["sandboxMode"] is True
    # The base URL override is applied after set_sandbox_mode, which would wipe it.
    assert set(venue.client.urls["api"].values()) == {weex.url}


def test_missing_credentials_are_named_but_never_shown(exch_seeded, settings, weex):
    settings.WEEX_API_PASSPHRASE = None
    with pytest.raises(VenueNotConfigured) as missing:
        venue_current()
    assert "passphrase" in missing.value.summary
    assert SECRET not in missing.value.summary and API_KEY not in missing.value.summary


def test_error_summaries_keep_the_code_and_drop_credentials():
    redact = Redactor([API_KEY, SECRET, PASSPHRASE])
    exc = ccxt.AuthenticationError(f'weex {{"code":-1044,"msg":"Invalid ACCESS_KEY {API_KEY} / {PASSPHRASE}"}}')
    summary, code = error_summary(exc, redact)
    assert code == "-1044"
    assert summary.startswith("AuthenticationError: code -1044")
    assert API_KEY not in summary and PASSPHRASE not in summary


# --- sandbox --------------------------------------------------------------------------


def test_sandbox_fills_at_the_reference_price_moved_by_slippage_with_a_fee(exch_seeded):
    sandbox = SandboxVenue()
    buy = sandbox.place(request=request("cx-sbx-buy", order_type="market", limit_price=None, expected_slippage_bps=Decimal("10")))
    sell = sandbox.place(
        request=request("cx-sbx-sell", side="sell", order_type="market", limit_price=None, expected_slippage_bps=Decimal("10"))
    )

    assert (buy.status, buy.average_price) == ("filled", Decimal("65065"))  # +10 bps
    assert (sell.status, sell.average_price) == ("filled", Decimal("64935"))  # -10 bps
    [fill] = sandbox.fetch_fills(symbol="BTCUSDT", venue_order_id=buy.venue_order_id)
    assert fill.fee == Decimal("0.065065") and fill.fee_asset == "USDT"  # 10 bps of 65.065 USDT


def test_sandbox_fills_are_the_same_fills_when_fetched_again(exch_seeded):
    sandbox = SandboxVenue()
    placed = sandbox.place(request=request("cx-sbx-again"))
    first = sandbox.fetch_fills(symbol="BTCUSDT", venue_order_id=placed.venue_order_id)
    again = sandbox.fetch_fills(symbol="BTCUSDT", venue_order_id=placed.venue_order_id)
    assert first == again and [f.trade_id for f in first] == ["sbx-cx-sbx-again-1"]


def test_sandbox_never_fills_through_a_limit_and_rests_what_is_not_marketable(exch_seeded):
    sandbox = SandboxVenue()
    capped = sandbox.place(request=request("cx-sbx-cap", expected_slippage_bps=Decimal("20")))
    resting = sandbox.place(request=request("cx-sbx-rest", limit_price=Decimal("64000")))

    assert capped.average_price == Decimal("65000")  # slippage would say 65130; the limit says no
    assert (resting.status, resting.filled_quantity) == ("open", 0)
    assert sandbox.fetch_fills(symbol="BTCUSDT", venue_order_id=resting.venue_order_id) == []


def test_sandbox_refuses_a_second_order_with_the_same_client_id_and_finds_the_first(exch_seeded):
    sandbox = SandboxVenue()
    sandbox.place(request=request("cx-sbx-dup"))
    with pytest.raises(VenueRejected):
        sandbox.place(request=request("cx-sbx-dup"))
    assert sandbox.fetch_order_by_client_id(symbol="BTCUSDT", client_order_id="cx-sbx-dup").status == "filled"
    with pytest.raises(VenueOrderNotFound):
        sandbox.fetch_order_by_client_id(symbol="BTCUSDT", client_order_id="cx-sbx-none")
    assert SandboxVenue.live is False


def recorded_health(venue):
    row = VenueHealth.objects.get(venue=venue)
    return row.healthy, row.detail


def test_the_router_probes_the_venue_and_records_it_for_the_execution_node_without_credentials(exch_seeded, weex, settings):
    assert venue_probe() == (True, "weex (live) ok") == recorded_health("weex")
    weex.stop()  # the venue goes away: the next probe asks it, not its cached markets
    healthy, detail = venue_probe()
    assert (healthy, detail) == (False, "weex (live) down") == recorded_health("weex")
    settings.WEEX_API_SECRET = None
    healthy, detail = venue_probe()
    assert healthy is False and "missing credentials: secret" in detail and SECRET not in detail
    assert recorded_health("weex") == (healthy, detail)
    settings.CHRONOSX_VENUE = "sandbox"
    assert venue_probe() == (True, "sandbox (not live) ok") == recorded_health("sandbox")


def test_an_answer_ends_an_error_streak_at_once_and_steady_answers_are_rewritten_once_a_second(exch_seeded):
    venue_call_failed(venue="weex", summary="place: timeout")
    venue_call_ok(venue="weex", latency_ms=40)
    row = VenueHealth.objects.get(venue="weex")
    assert (row.consecutive_errors, row.last_latency_ms) == (0, 40) and row.last_ok_at is not None

    venue_call_ok(venue="weex", latency_ms=55)  # within the second: nothing to write
    assert VenueHealth.objects.get(venue="weex").last_latency_ms == 40

    VenueHealth.objects.filter(venue="weex").update(last_ok_at=timezone.now() - timedelta(seconds=2))
    venue_call_ok(venue="weex", latency_ms=55)
    assert VenueHealth.objects.get(venue="weex").last_latency_ms == 55

    venue_call_failed(venue="weex", summary="place: timeout")
    venue_call_ok(venue="weex", latency_ms=60)  # within the second, but a streak to end
    row = VenueHealth.objects.get(venue="weex")
    assert (row.consecutive_errors, row.last_latency_ms) == (0, 60)


def test_an_answer_from_a_venue_without_a_record_creates_none(exch_seeded):
    """The record is the probe's (or an error's) to create: an answer only refreshes one."""
    venue_call_ok(venue="nowhere", latency_ms=5)
    assert not VenueHealth.objects.filter(venue="nowhere").exists()
