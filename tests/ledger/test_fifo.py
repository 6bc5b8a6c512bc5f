"""FIFO lots and realized PnL, with every expected number computed by hand in the comments."""

from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest

from ledger.models import AuditEvent, Fill, Lot, Position, RealizedPnl
from ledger.selectors import (
    audit_chain_verify,
    fees_paid_by_asset,
    realized_pnl_by,
    realized_pnl_total,
)
from ledger.services import CloseExceedsPosition
from tests.builders import Book, D


def test_opening_fills_add_lots_with_their_fee_and_the_position_follows(book):
    book.buy("1", "100", fee="0.1")
    book.buy("2", "110", fee="0.22")
    lots = list(Lot.objects.order_by("id"))
    assert [(l.direction, l.remaining, l.entry_price, l.remaining_entry_fee) for l in lots] == [
        ("long", D("1"), D("100"), D("0.1")),
        ("long", D("2"), D("110"), D("0.22")),
    ]
    # 1 × 100 + 2 × 110 = 320
    assert book.position() == (D("3"), D("320"))
    assert RealizedPnl.objects.count() == 0


def test_a_close_consumes_the_oldest_lots_first_across_entries_at_different_prices(book):
    book.buy("1", "100", fee="0.1")
    book.buy("1", "110", fee="0.2")
    book.close_sell("1.5", "120", fee="0.3")

    pnl = RealizedPnl.objects.get()
    # lot 1 whole: (120 − 100) × 1 = 20, its whole fee 0.1
    # lot 2 half:  (120 − 110) × 0.5 = 5, half its fee 0.2 × 0.5 = 0.1
    # exit fee 0.3 → fees 0.5; net 25 − 0.5 = 24.5
    assert (pnl.gross, pnl.fees, pnl.amount, pnl.quantity) == (D("25"), D("0.5"), D("24.5"), D("1.5"))
    assert [(x["quantity"], x["entry_price"], x["entry_fee"]) for x in pnl.lots] == [
        ("1", "100", "0.1"),
        ("0.5", "110", "0.1"),
    ]
    first, second = Lot.objects.order_by("id")
    assert first.remaining == 0 and first.closed_at is not None
    assert (second.remaining, second.remaining_entry_fee, second.closed_at) == (D("0.5"), D("0.1"), None)
    # what is left: 0.5 at 110
    assert book.position() == (D("0.5"), D("55.0"))


def test_partial_closes_until_flat_sum_to_the_hand_computed_total(book):
    book.buy("1", "100", fee="0.1")
    book.buy("1", "110", fee="0.2")
    book.close_sell("1.5", "120", fee="0.3")  # 24.5 (see above)
    book.close_sell("0.5", "90", fee="0.05")
    # (90 − 110) × 0.5 = −10; the lot's remaining fee 0.1; exit 0.05 → −10.15
    last = RealizedPnl.objects.order_by("id").last()
    assert (last.gross, last.fees, last.amount) == (D("-10"), D("0.15"), D("-10.15"))
    assert realized_pnl_total() == D("14.35")
    assert book.position() == (D("0"), D("0"))
    assert not Lot.objects.filter(closed_at__isnull=True).exists()


def test_a_short_is_closed_by_a_buy_and_gains_when_the_price_falls(book):
    book.sell("2", "50", fee="0.1")
    assert book.position() == (D("-2"), D("100"))
    book.close_buy("0.5", "40", fee="0.02")
    pnl = RealizedPnl.objects.get()
    # (50 − 40) × 0.5 = 5; entry fee 0.1 × 0.5 / 2 = 0.025; exit 0.02 → 4.955
    assert (pnl.gross, pnl.fees, pnl.amount) == (D("5.0"), D("0.045"), D("4.955"))
    assert book.position() == (D("-1.5"), D("75.0"))


def test_a_lots_fee_shares_add_up_to_exactly_the_fee_paid(book):
    book.buy("3", "100", fee="0.1")
    for _ in range(3):
        book.close_sell("1", "100")
    shares = [Decimal(r.lots[0]["entry_fee"]) for r in RealizedPnl.objects.order_by("id")]
    # 1st: 0.1 × 1/3 = 0.033333333333 (to 1e-12); 0.066666666667 left
    # 2nd: 0.066666666667 × 1/2 = 0.0333333333335 → half-even 0.033333333334; 0.033333333333 left
    # 3rd (last): takes the rest, 0.033333333333
    assert shares == [D("0.033333333333"), D("0.033333333334"), D("0.033333333333")]
    assert sum(shares) == D("0.1")
    assert realized_pnl_total() == D("-0.1")


def test_a_close_larger_than_the_position_is_refused_and_records_nothing(book):
    book.buy("1", "100", fee="0.1")
    events_before = AuditEvent.objects.count()
    with pytest.raises(CloseExceedsPosition, match="exceeds the open long quantity 1"):
        book.close_sell("1.0001", "120")
    assert Fill.objects.count() == 1
    assert RealizedPnl.objects.count() == 0
    assert AuditEvent.objects.count() == events_before
    assert book.position() == (D("1"), D("100"))
    assert Lot.objects.get().remaining == D("1")


def test_a_close_in_the_direction_of_the_position_is_refused(book):
    book.buy("1", "100")
    with pytest.raises(CloseExceedsPosition, match="open short quantity 0"):
        book.close_buy("0.5", "100")


def test_a_fill_delivered_twice_changes_nothing(book):
    order = book.order(side="buy", quantity="1")
    assert book.buy("1", "100", fee="0.1", order=order, trade_id="dup-1") is not None
    events = AuditEvent.objects.count()
    assert book.buy("1", "100", fee="0.1", order=order, trade_id="dup-1") is None
    assert (Fill.objects.count(), Lot.objects.count(), AuditEvent.objects.count()) == (1, 1, events)
    assert book.position() == (D("1"), D("100"))


def test_a_fee_in_another_asset_is_kept_by_asset_and_never_converted(book):
    book.buy("1", "100", fee="0.001", fee_asset="BNB")
    book.close_sell("1", "110", fee="0.002", fee_asset="BNB")
    pnl = RealizedPnl.objects.get()
    # no guessed BNB→USDT rate: the quote-currency PnL carries no fee, the BNB fee is shown apart
    assert (pnl.gross, pnl.fees, pnl.amount) == (D("10"), D("0"), D("10"))
    assert pnl.unconverted_fees == {"BNB": "0.002"}
    assert Lot.objects.get().entry_fee == 0
    assert fees_paid_by_asset() == {"BNB": "0.003"}


def test_realized_pnl_is_grouped_per_strategy_instrument_and_utc_day(db):
    a, b = Book(strategy="alpha1"), Book(strategy="beta1", symbol="ETHUSDT")
    day1 = datetime(2026, 3, 2, 23, 59, tzinfo=dt_timezone.utc)
    day2 = datetime(2026, 3, 3, 0, 1, tzinfo=dt_timezone.utc)
    a.buy("2", "100", at=datetime(2026, 3, 2, 10, tzinfo=dt_timezone.utc))
    a.close_sell("1", "105", fee="1", at=day1)  # 5 − 1 = 4
    a.close_sell("1", "98", at=day2)  # −2
    b.buy("1", "10", at=datetime(2026, 3, 2, 10, tzinfo=dt_timezone.utc))
    b.close_sell("1", "13", at=day2)  # 3

    assert {k: v["amount"] for k, v in realized_pnl_by(key="strategy").items()} == {"alpha1": "2", "beta1": "3"}
    assert {k: v["amount"] for k, v in realized_pnl_by(key="instrument").items()} == {"BTCUSDT": "2", "ETHUSDT": "3"}
    days = realized_pnl_by(key="day")
    assert {k: v["amount"] for k, v in days.items()} == {"2026-03-02": "4", "2026-03-03": "1"}
    assert days["2026-03-03"]["closes"] == 2
    assert realized_pnl_by(key="day", strategies=[b.strategy]) == {
        "2026-03-03": {"amount": "3", "gross": "3", "fees": "0", "quantity": "1", "closes": 1}
    }


def test_every_fill_is_audited_with_its_realized_pnl_and_the_chain_verifies(book):
    book.buy("1", "100", fee="0.1")
    book.close_sell("1", "101", fee="0.1")
    events = list(AuditEvent.objects.filter(kind="fill.recorded").order_by("id"))
    assert len(events) == 2
    assert '"realized":{"amount":"0.8"' in events[1].payload
    assert audit_chain_verify().ok


def test_the_position_row_is_locked_and_kept_equal_to_the_open_lots(book):
    book.buy("0.3", "100")
    book.sell("0.1", "120")  # an opening sell: a short lot next to the long one, nothing realized
    book.close_sell("0.2", "130")
    qty, notional = book.position()
    lots = Lot.objects.filter(closed_at__isnull=True)
    assert qty == sum((l.remaining if l.direction == "long" else -l.remaining for l in lots), Decimal(0))
    assert notional == sum((l.remaining * l.entry_price for l in lots), Decimal(0))
    # long 0.1 @100 + short 0.1 @120 left: net 0, gross notional 22
    assert (qty, notional) == (D("0"), D("22.0"))
    assert Position.objects.count() == 1
