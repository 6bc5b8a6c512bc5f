"""The embedded default venue: in-process, no network, never live.

It fills a marketable order at once, at the proposal's reference price moved by
its expected slippage (buys up, sells down; never through a limit price), and
charges a fee in the quote asset. Its book is a table keyed by client order id,
so it refuses a duplicate and answers look-ups like a real venue, from any process.
"""

from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from exchange.models import SandboxOrder
from exchange.venues.base import (
    OrderRequest,
    VenueFill,
    VenueOrder,
    VenueOrderNotFound,
    VenueRejected,
    plain,
)
from governance.models import Instrument

BPS = Decimal(10000)
PRICE_PLACES = Decimal("0.00000001")


class SandboxVenue:
    name = "sandbox"
    live = False
    in_process = True  # no network: its calls are this process's own database work

    def quantity_for(self, *, symbol: str, quantity: Decimal) -> Decimal:

        step = Instrument.objects.get(symbol=symbol).quantity_step
        return plain((quantity / step).to_integral_value(ROUND_DOWN) * step)

    def price_for(self, *, symbol: str, side: str, price: Decimal) -> Decimal:
        return price

    def fill_price(self, request: OrderRequest) -> Decimal | None:
        """Where the order fills, or None when it is not marketable."""
        move = request.reference_price * request.expected_slippage_bps / BPS
        price = request.reference_price + move if request.side == "buy" else request.reference_price - move
        price = price.quantize(PRICE_PLACES)
        if request.order_type == "market":
            return plain(price)
        limit = request.limit_price
        if request.side == "buy":
            return None if limit < request.reference_price else plain(min(price, limit))
        return None if limit > request.reference_price else plain(max(price, limit))

    def place(self, *, request: OrderRequest) -> VenueOrder:
        now = timezone.now()
        price = self.fill_price(request)
        fills, status, filled, average = [], "open", Decimal(0), None
        if price is not None:
            fee = plain(request.quantity * price * Decimal(settings.CHRONOSX_SANDBOX_FEE_BPS) / BPS)
            # One fill per order, its id derived from the client order id: fetched again, it is the same fill.
            fills = [
                {
                    "trade_id": f"sbx-{request.client_order_id}-1",
                    "price": str(price),
                    "quantity": str(request.quantity),
                    "fee": str(fee),
                    "fee_asset": request.quote_asset,
                    "filled_at": now.isoformat(),
                }
            ]
            status, filled, average = "filled", request.quantity, price
        try:
            with transaction.atomic():
                row = SandboxOrder.objects.create(
                    client_order_id=request.client_order_id,
                    venue_order_id=f"sbx-{request.client_order_id}",
                    symbol=request.symbol,
                    side=request.side,
                    order_type=request.order_type,
                    quantity=request.quantity,
                    limit_price=request.limit_price,
                    status=status,
                    filled_quantity=filled,
                    average_price=average,
                    fills=fills,
                    created_at=now,
                )
        except IntegrityError:
            raise VenueRejected("duplicate client order id", code="duplicate_client_order_id")
        return self._answer(row)

    def fetch_order_by_client_id(self, *, symbol: str, client_order_id: str) -> VenueOrder:
        row = SandboxOrder.objects.filter(client_order_id=client_order_id).first()
        if row is None:
            raise VenueOrderNotFound("no such sandbox order")
        return self._answer(row)

    def fetch_fills(self, *, symbol: str, venue_order_id: str) -> list[VenueFill]:
        from datetime import datetime

        row = SandboxOrder.objects.filter(venue_order_id=venue_order_id).first()
        if row is None:
            return []
        return [
            VenueFill(
                trade_id=f["trade_id"],
                venue_order_id=row.venue_order_id,
                price=Decimal(f["price"]),
                quantity=Decimal(f["quantity"]),
                fee=Decimal(f["fee"]),
                fee_asset=f["fee_asset"],
                filled_at=datetime.fromisoformat(f["filled_at"]),
            )
            for f in row.fills
        ]

    def cancel(self, *, symbol: str, client_order_id: str) -> VenueOrder:
        """A resting order leaves the book; anything else is not open here."""
        with transaction.atomic():
            row = SandboxOrder.objects.select_for_update().filter(client_order_id=client_order_id).first()
            if row is None or row.status not in ("open", "partially_filled"):
                raise VenueOrderNotFound("no such open sandbox order")
            row.status = "cancelled"
            row.save(update_fields=["status"])
        return self._answer(row)

    def health(self, *, probe: bool = False) -> dict:
        return {"venue": self.name, "live": self.live, "status": "ok"}

    @staticmethod
    def _answer(row: SandboxOrder) -> VenueOrder:
        return VenueOrder(
            client_order_id=row.client_order_id,
            venue_order_id=row.venue_order_id,
            status=row.status,
            quantity=row.quantity,
            filled_quantity=row.filled_quantity,
            average_price=row.average_price,
        )
