import itertools
import uuid
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest

from exchange.models import Order
from governance.models import Agent, Instrument, Proposal, Strategy
from ledger.services import fill_record

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=dt_timezone.utc)
_trade_ids = itertools.count(1)


class Book:
    """Small explicit builder: proposals, orders and fills of one strategy, straight into the ledger."""

    def __init__(self, strategy="fifo", symbol="BTCUSDT", venue="sandbox", live=False):
        self.instrument, _ = Instrument.objects.get_or_create(
            symbol=symbol,
            defaults={"base_asset": symbol.removesuffix("USDT"), "min_quantity": "0.0001", "quantity_step": "0.0001"},
        )
        self.strategy, _ = Strategy.objects.get_or_create(slug=strategy)
        self.agent, _ = Agent.objects.get_or_create(
            name=f"agent-{strategy}", defaults={"token_hash": uuid.uuid4().hex, "token_prefix": "cx_test"}
        )
        self.venue, self.live = venue, live
        self.clock = T0

    def order(self, *, side, quantity, intent="open", reference_price="100"):
        proposal = Proposal.objects.create(
            agent=self.agent,
            strategy=self.strategy,
            instrument=self.instrument,
            side=side,
            quantity=quantity,
            order_type="market",
            reference_price=reference_price,
            expected_slippage_bps="1",
            confidence="0.9",
            signal_time=self.clock,
            intent=intent,
            received_at=self.clock,
            status_changed_at=self.clock,
            idempotency_key=uuid.uuid4().hex,
            request_hash="x",
        )
        return Order.objects.create(
            proposal=proposal,
            client_order_id=uuid.uuid4().hex[:32],
            venue=self.venue,
            live=self.live,
            symbol=self.instrument.symbol,
            side=side,
            order_type="market",
            quantity=quantity,
        )

    def fill(self, side, quantity, price, *, fee="0", fee_asset="USDT", intent="open", at=None, order=None, trade_id=None,
             reference_price="100"):
        self.clock = at or self.clock + timedelta(minutes=1)
        order = order or self.order(side=side, quantity=quantity, intent=intent, reference_price=reference_price)
        return fill_record(
            order=order,
            trade_id=trade_id or f"t{next(_trade_ids)}",
            price=price,
            quantity=quantity,
            fee=fee,
            fee_asset=fee_asset,
            filled_at=self.clock,
        )

    def buy(self, quantity, price, **kw):
        return self.fill("buy", quantity, price, **kw)

    def sell(self, quantity, price, **kw):
        return self.fill("sell", quantity, price, **kw)

    def close_sell(self, quantity, price, **kw):
        return self.fill("sell", quantity, price, intent="close", **kw)

    def close_buy(self, quantity, price, **kw):
        return self.fill("buy", quantity, price, intent="close", **kw)

    def position(self):
        from ledger.models import Position

        p = Position.objects.get(strategy=self.strategy, instrument=self.instrument)
        return p.quantity, p.entry_notional


@pytest.fixture
def book(db):
    return Book()


def D(text) -> Decimal:
    return Decimal(text)
