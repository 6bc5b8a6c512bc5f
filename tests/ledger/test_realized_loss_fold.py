"""The loss checks' inputs. On PostgreSQL the database folds the closes; its figures must be the
Python fold's (SQLite's, and the dashboard's), text for text, and it must not read the closes back."""

import decimal
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ledger.selectors import _realized_loss_fold, _realized_rows, realized_loss_inputs
from tests.builders import T0, Book


def python_fold(strategy_id, instrument_id, day):
    with decimal.localcontext() as exact:
        exact.prec = 60
        return _realized_loss_fold(_realized_rows(), strategy_id, instrument_id, day)


def round_trip(book, quantity, entry, exit_, *, at=None, fee="0"):
    book.buy(quantity, entry, fee=fee)
    book.close_sell(quantity, exit_, at=at, fee=fee)


@pytest.fixture
def history(db):
    """Three books over two UTC days: gains and losses of several scales, an even close, a
    losing streak, two closes at the same instant, and a close recorded after a later one."""
    alpha, beta, alpha_eth = Book(strategy="alpha"), Book(strategy="beta"), Book(strategy="alpha", symbol="ETHUSDT")
    round_trip(alpha, "0.0010", "65000", "65100.5")  # +0.1005
    round_trip(beta, "2", "100", "99.75", fee="0.0001")  # a loss net of fees
    round_trip(alpha, "1", "100", "100")  # even: ends a streak
    round_trip(alpha_eth, "0.5", "3000", "2999.999")
    round_trip(alpha, "0.25", "200", "180.125")  # losses on alpha BTCUSDT: the streak
    instant = T0 + timedelta(days=1, hours=1)
    round_trip(alpha, "0.10", "300", "299.5", at=instant)
    round_trip(beta, "3", "10", "12", at=instant)  # same instant, recorded later: after it
    round_trip(alpha, "1E+1", "7", "6.5", at=T0 + timedelta(days=1, hours=2))
    round_trip(alpha, "0.3", "100", "100.01", at=T0 + timedelta(days=1, hours=3))  # a gain ends the streak
    round_trip(alpha, "0.2", "100", "99.9", at=T0 + timedelta(days=1, hours=4))  # a new one starts
    round_trip(beta, "1", "50", "49", at=T0 + timedelta(days=1, hours=5))
    round_trip(beta, "1", "50", "50", at=T0 + timedelta(days=1, hours=6))  # even: not a loss, the streak ends
    # Recorded last, filled before the losses above: the fold goes by fill time, not by row.
    round_trip(alpha, "0.00000001", "64000", "65000", at=T0 + timedelta(hours=20))
    return {"alpha": alpha, "beta": beta, "alpha_eth": alpha_eth}


def test_the_database_fold_gives_the_python_folds_texts_for_every_book_and_day(history):
    alpha, beta, alpha_eth = history["alpha"], history["beta"], history["alpha_eth"]
    days = [T0.date(), (T0 + timedelta(days=1)).date(), (T0 + timedelta(days=9)).date()]
    books = [
        (alpha.strategy.id, alpha.instrument.id),
        (beta.strategy.id, beta.instrument.id),
        (alpha_eth.strategy.id, alpha_eth.instrument.id),
        (alpha.strategy.id, None),
        (None, None),  # the portfolio alone (decision_context_losses)
    ]
    for strategy_id, instrument_id in books:
        for day in days:
            assert realized_loss_inputs(strategy_id=strategy_id, instrument_id=instrument_id, day=day) == python_fold(
                strategy_id, instrument_id, day
            )
    figures = realized_loss_inputs(strategy_id=alpha.strategy.id, instrument_id=alpha.instrument.id, day=days[1])
    assert figures["loss_streak"] == {"count": 1, "ended_at": (T0 + timedelta(days=1, hours=4)).isoformat()}
    assert figures["drawdown"]["portfolio"] != "0"
    assert realized_loss_inputs(strategy_id=beta.strategy.id, instrument_id=beta.instrument.id, day=days[1])["loss_streak"] == {
        "count": 0, "ended_at": None
    }


def test_with_no_close_every_figure_is_zero(db):
    book = Book()
    assert realized_loss_inputs(strategy_id=book.strategy.id, instrument_id=book.instrument.id, day=T0.date()) == {
        "realized_today": {"strategy": "0", "asset": "0", "portfolio": "0"},
        "drawdown": {"strategy": "0", "portfolio": "0"},
        "loss_streak": {"count": 0, "ended_at": None},
    }


def test_the_closes_are_folded_in_the_database_not_read_back(history):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite (the embedded default) folds the closes in Python")
    alpha = history["alpha"]
    with CaptureQueriesContext(connection) as queries:
        realized_loss_inputs(strategy_id=alpha.strategy.id, instrument_id=alpha.instrument.id, day=T0.date())
    assert len(queries.captured_queries) == 1
    assert not queries.captured_queries[0]["sql"].startswith('SELECT "ledger_realizedpnl"')
