"""Fills are keyed by order and venue trade id."""

from ledger.models import Fill
from tests.builders import D


def test_a_trade_id_the_venue_reuses_on_another_order_is_booked_and_a_true_duplicate_is_not(book):
    first = book.buy("0.5", "100", trade_id="t-reused")
    second = book.buy("0.25", "101", trade_id="t-reused")  # the venue restarted and counts trade ids from 1 again

    assert first is not None and second is not None
    assert book.buy("0.5", "100", order=first.order, trade_id="t-reused") is None  # seen before on that order: dropped
    assert Fill.objects.filter(trade_id="t-reused").count() == 2
    assert book.position() == (D("0.75"), D("75.25"))
