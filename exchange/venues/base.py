"""The one small interface every venue speaks, and the answers it gives.

A venue call ends in exactly one of: an answer (VenueOrder, a list of VenueFill),
or one of the exceptions below, which say what the router may conclude:

- VenueRejected: the venue refused; the order does not exist there.
- VenueRateLimited: not processed (429); try again later, same client order id.
- VenueUnknown: no usable answer (timeout, connection error, 5xx, an unclassified
  error): the order may or may not exist. Look it up before anything else.
- VenueOrderNotFound: a look-up positively says the venue has no such order; a cancel,
  that the venue has no such order open (it may have filled or ended already: look it up).
- VenueUnavailable: a look-up or fills call failed; nothing can be concluded.

A cancel ends the same way: an answer (the venue confirms the cancel; fills are read
apart), VenueRejected (refused: the order is as it was), VenueRateLimited (not
processed), VenueUnknown (it may or may not be cancelled: look it up, never assume).
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class VenueOrder:
    client_order_id: str
    venue_order_id: str
    # open | partially_filled | filled | cancelled | rejected, or None when the
    # venue's answer does not say (WEEX's create reply carries only ids).
    status: str | None
    quantity: Decimal | None = None
    filled_quantity: Decimal | None = None
    average_price: Decimal | None = None


@dataclass(frozen=True)
class VenueFill:
    trade_id: str
    venue_order_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    filled_at: datetime


@dataclass(frozen=True)
class OrderRequest:
    """What the router asks a venue to do. Decimals are exact and already on the venue's precision."""

    client_order_id: str
    symbol: str  # our instrument symbol, e.g. BTCUSDT
    side: str  # buy | sell
    order_type: str  # market | limit
    quantity: Decimal
    limit_price: Decimal | None
    # For the sandbox, which fills at the reference price moved by the slippage.
    reference_price: Decimal
    expected_slippage_bps: Decimal
    quote_asset: str = "USDT"
    reduce_only: bool = False


class VenueError(Exception):
    """Base of venue outcomes. `summary` is safe to log and audit: never credentials."""

    def __init__(self, summary: str, code: str | None = None):
        super().__init__(summary)
        self.summary = summary
        self.code = code


class VenueRejected(VenueError):
    pass


class VenueRateLimited(VenueError):
    pass


class VenueUnknown(VenueError):
    pass


class VenueOrderNotFound(VenueError):
    pass


class VenueUnavailable(VenueError):
    pass


class VenueNotConfigured(VenueError):
    pass


class Venue(Protocol):
    name: str  # stored on Order.venue, e.g. "sandbox", "weex"
    live: bool  # False for the sandbox and for an exchange's demo trading
    in_process: bool  # True for the sandbox: no network, so no venue latency to measure

    def quantity_for(self, *, symbol: str, quantity: Decimal) -> Decimal:
        """`quantity` rounded DOWN to the venue's amount precision (0 when nothing is left)."""

    def price_for(self, *, symbol: str, side: str, price: Decimal) -> Decimal:
        """A limit price on the venue's tick, rounded in the cautious direction (buy down, sell up)."""

    def place(self, *, request: OrderRequest) -> VenueOrder:
        ...

    def fetch_order_by_client_id(self, *, symbol: str, client_order_id: str) -> VenueOrder:
        ...

    def fetch_fills(self, *, symbol: str, venue_order_id: str) -> list[VenueFill]:
        ...

    def cancel(self, *, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel an open order by its client order id. The answer confirms the cancel
        (status "cancelled"); what filled before it is read with a look-up and fetch_fills."""
        ...

    def health(self, *, probe: bool = False) -> dict:
        """{"venue", "live", "status": "ok" | "down", …}; `probe` asks the venue now rather than from what is cached."""
        ...


@dataclass
class Redactor:
    """Removes credentials from any text before it is logged, stored or audited."""

    secrets: list[str] = field(default_factory=list)

    def __call__(self, text) -> str:
        text = str(text)
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def plain(value: Decimal) -> Decimal:
    """The same number without trailing zeros or an exponent: 65000.000 -> 65000, 1E-5 -> 0.00001."""
    value = Decimal(value)
    if value == 0:
        return Decimal(0)
    text = format(value.normalize(), "f")
    return Decimal(text)


def to_decimal(value) -> Decimal | None:
    """A venue number as an exact Decimal. Floats go through repr, their shortest round-trip form."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        value = repr(value)
    return plain(Decimal(str(value)))
