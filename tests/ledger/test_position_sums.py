"""A position is its open lots summed. On PostgreSQL the database sums them: the text it stores
must be the one a Decimal sum gives, scale for scale, and a fill must not read the lots back."""

from decimal import Decimal, localcontext

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chronosx.canonical import decimal_text
from ledger.models import Lot, Position
from ledger.services import LEDGER_CONTEXT


def decimal_sums(book):
    """The position as Python's Decimal sums it from 0 over the open lots (the definition)."""
    quantity = notional = Decimal(0)
    with localcontext(LEDGER_CONTEXT):
        for lot in Lot.objects.filter(strategy=book.strategy, instrument=book.instrument, closed_at__isnull=True):
            quantity += lot.remaining if lot.direction == "long" else -lot.remaining
            notional += lot.remaining * lot.entry_price
    return decimal_text(quantity), decimal_text(notional)


def stored(book):
    quantity, notional = book.position()
    return decimal_text(quantity), decimal_text(notional)


def test_the_stored_position_is_the_decimal_sum_text_for_text_across_scales_sides_and_closes(book):
    steps = [
        lambda: book.buy("0.0010", "65000"),
        lambda: book.buy("2", "64999.5"),
        lambda: book.buy("1E+1", "3"),  # exponent forms: the lot keeps them plain
        lambda: book.buy("1E+1", "0.5"),
        lambda: book.buy("0.5", "1.5E+3"),
        lambda: book.sell("0.50", "65100.25"),  # an opening sell: a short lot
        lambda: book.buy("0.00000001", "65000.123456789"),
        lambda: book.close_sell("0.0010", "66000"),  # closes the oldest long lot, the one of scale 4
        lambda: book.close_sell("2", "66000"),
        lambda: book.close_buy("0.50", "65000"),  # flat on the short side
        lambda: book.close_sell("2E+1", "4"),
        lambda: book.close_sell("0.5", "1500"),
        lambda: book.close_sell("0.00000001", "1"),  # nothing open: "0"
    ]
    seen = []
    for step in steps:
        step()
        assert stored(book) == decimal_sums(book)
        seen.append(stored(book))
    assert seen[0] == ("0.0010", "65.0000")
    assert seen[6] == ("22.00100001", "163399.12565000123456789")
    assert seen[-1] == ("0", "0")


def test_a_fill_does_not_read_back_the_lots_its_book_holds_open(book):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite (the embedded default) sums the open lots in Python")
    for _ in range(30):
        book.buy("0.0010", "65000")
    with CaptureQueriesContext(connection) as queries:
        book.buy("0.0010", "65000")
    lot_reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "ledger_lot"')]
    assert lot_reads == []
    assert stored(book) == ("0.0310", "2015.0000")
    assert Position.objects.count() == 1


def test_a_fill_in_exponent_form_opens_a_plain_lot_and_both_sums_agree(book):
    # Decimal("1E+1") × 0.5 is 5 in Python and 5.0 in PostgreSQL: the lot keeps "10".
    book.buy("1E+1", "0.5")
    lot = Lot.objects.values_list("quantity", "remaining", "entry_price").get()
    assert [str(value) for value in lot] == ["10", "10", "0.5"]  # not "1E+1"
    assert stored(book) == decimal_sums(book) == ("10", "5.0")
