"""A venue that is any ccxt exchange; WEEX (`ccxt.weex`) is the one configured.

ccxt does the signing, endpoints, precision and error mapping; this class only
translates ccxt's answers and exceptions into the router's vocabulary
(exchange.venues.base). Quirks of ccxt 4.5.90's weex class it relies on are in
/work/shared/WEEX.md.

Credentials go into the ccxt client and nowhere else: every text that leaves this
module (exception summaries, log lines, including ccxt's own debug log of request
headers) passes through a redactor that knows them.
"""

import json
import logging
import threading
import time
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import ccxt

from exchange.venues.base import (
    OrderRequest,
    Redactor,
    VenueFill,
    VenueNotConfigured,
    VenueOrder,
    VenueOrderNotFound,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
    VenueUnknown,
    plain,
    to_decimal,
)
from governance.models import Instrument

log = logging.getLogger(__name__)

# The venue has the order nowhere: the only answers that allow a resend.
NOT_FOUND_CODES = {
    # WEEX: -2200 spot "order does not exist" (ccxt: OrderNotFound); -3200 contract
    # "order not found", which ccxt maps to InvalidOrder.
    "weex": {"-2200", "-3200"},
}
# Refusals: the venue processed the request and said no, so the order does not exist.
# Everything else that is not a rate limit (timeouts, 5xx, unclassified ExchangeError,
# which is what a 5xx with a JSON body becomes) leaves the outcome unknown.
REFUSALS = (
    ccxt.AuthenticationError,  # includes PermissionDenied, AccountSuspended
    ccxt.BadRequest,  # includes BadSymbol
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,
    ccxt.NotSupported,
    ccxt.ArgumentsRequired,
    ccxt.OperationRejected,
)
RATE_LIMITS = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)


class _RedactingFilter(logging.Filter):
    """Applied to the logger ccxt writes to: its debug lines carry the request headers."""

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record):
        if self.secrets:
            message = record.getMessage()
            redacted = Redactor(sorted(self.secrets))(message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


_ccxt_log = logging.getLogger("exchange.ccxt")
_redacting_filter = _RedactingFilter()
_ccxt_log.addFilter(_redacting_filter)


def error_summary(exc: Exception, redact: Redactor) -> tuple[str, str | None]:
    """A short, credential-free description of a ccxt exception, and the venue's error code if any.

    ccxt puts the exchange's response body in the message (`weex {"code":..,"msg":..}`),
    never the request headers; only the parsed code and msg are kept, redacted anyway.
    """
    name = type(exc).__name__
    text = str(exc)
    code = msg = None
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start:])
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("code")
            msg = body.get("msg") or body.get("errorMsg")
    code = None if code is None else str(code)
    parts = [name]
    if code is not None:
        parts.append(f"code {code}")
    if msg:
        parts.append(redact(str(msg))[:120])
    return redact(": ".join(parts)), code


def _status(order: dict) -> str | None:
    """ccxt's unified status, read back into ours."""
    status = order.get("status")
    filled = to_decimal(order.get("filled")) or Decimal(0)
    amount = to_decimal(order.get("amount"))
    if status == "open":
        return "partially_filled" if filled > 0 else "open"
    if status == "closed":
        # ccxt reports WEEX's PARTIAL_FILL as closed too: only a complete fill is final.
        if filled > 0 and (amount is None or filled >= amount):
            return "filled"
        return "partially_filled" if filled > 0 else None
    if status in ("canceled", "cancelled", "expired"):
        return "cancelled"
    if status == "rejected":
        return "rejected"
    if status == "partially_filled":
        return "partially_filled"
    return None


class CcxtVenue:
    def __init__(
        self,
        *,
        name: str,
        exchange_id: str,
        api_key: str | None,
        secret: str | None,
        password: str | None,
        demo: bool = False,
        base_url: str | None = None,
        market_type: str = "spot",
        timeout_ms: int = 5000,
        rate_limit: bool = True,
    ):
        missing = [label for label, value in (("api key", api_key), ("secret", secret)) if not value]
        if exchange_id == "weex" and not password:
            missing.append("passphrase")
        if missing:
            raise VenueNotConfigured(f"{name}: missing credentials: {', '.join(missing)}")
        if market_type not in ("spot", "swap"):
            raise VenueNotConfigured(f"{name}: market type must be spot or swap, not {market_type!r}")
        if demo and exchange_id == "weex" and market_type != "swap":
            raise VenueNotConfigured("WEEX demo trading (sandbox mode) has contract markets only: set the market to swap")
        exchange_class = getattr(ccxt, exchange_id, None)
        if exchange_class is None:
            raise VenueNotConfigured(f"{name}: ccxt has no exchange {exchange_id!r}")

        self.name = name
        self.in_process = False
        self.exchange_id = exchange_id
        self.live = not demo
        self.demo = demo
        self.market_type = market_type
        self.redact = Redactor([s for s in (api_key, secret, password) if s])
        _redacting_filter.secrets.update(self.redact.secrets)
        self.client = exchange_class(
            {
                "apiKey": api_key,
                "secret": secret,
                "password": password,
                "enableRateLimit": rate_limit,
                "timeout": int(timeout_ms),
                # Retries are the router's business: it looks an order up before any resend.
                "maxRetriesOnFailure": 0,
                "options": {"defaultType": market_type},
            }
        )
        self.client.logger = _ccxt_log
        if demo:
            # Sets the exchange's demo hosts and, for WEEX, the /sim/ contract endpoints.
            self.client.set_sandbox_mode(True)
        if base_url:
            # After set_sandbox_mode, which replaces urls['api'] wholesale.
            api = self.client.urls["api"]
            self.client.urls["api"] = {k: base_url for k in api} if isinstance(api, dict) else base_url
        self.not_found_codes = NOT_FOUND_CODES.get(exchange_id, set())
        self._lock = threading.Lock()

    # --- markets and precision ---

    def _markets(self):
        if not self.client.markets:
            try:
                self.client.load_markets()
            except ccxt.BaseError as exc:
                raise VenueUnavailable(f"load markets: {error_summary(exc, self.redact)[0]}") from None
        return self.client.markets

    def market_symbol(self, symbol: str) -> str:
        """Our instrument (BTCUSDT) as ccxt's unified symbol: BTC/USDT (spot) or BTC/USDT:USDT (swap)."""

        instrument = Instrument.objects.filter(symbol=symbol).only("base_asset", "quote_asset").first()
        if instrument is None:
            raise VenueRejected(f"unknown instrument {symbol}")
        unified = f"{instrument.base_asset}/{instrument.quote_asset}"
        if self.market_type == "swap":
            unified += f":{instrument.quote_asset}"
        if unified not in self._markets():
            raise VenueRejected(f"{self.name} has no {self.market_type} market {unified}")
        return unified

    def quantity_for(self, *, symbol: str, quantity: Decimal) -> Decimal:
        unified = self.market_symbol(symbol)
        try:
            # ccxt truncates to the amount precision: never up.
            return plain(Decimal(self.client.amount_to_precision(unified, str(quantity))))
        except ccxt.InvalidOrder:
            return Decimal(0)  # below one precision step

    def price_for(self, *, symbol: str, side: str, price: Decimal) -> Decimal:
        unified = self.market_symbol(symbol)
        precision = self.client.markets[unified]["precision"]["price"]
        if precision is None:
            return price
        if self.client.precisionMode == ccxt.TICK_SIZE:
            tick = to_decimal(precision)
        elif self.client.precisionMode == ccxt.DECIMAL_PLACES:
            tick = Decimal(1).scaleb(-int(precision))
        else:
            return plain(Decimal(self.client.price_to_precision(unified, str(price))))
        # A buy never pays more, a sell never takes less, than the approved limit.
        rounding = ROUND_FLOOR if side == "buy" else ROUND_CEILING
        return plain((price / tick).to_integral_value(rounding) * tick)

    # --- orders ---

    def place(self, *, request: OrderRequest) -> VenueOrder:
        unified = self.market_symbol(request.symbol)
        params = {"clientOrderId": request.client_order_id}
        if request.reduce_only and self.market_type == "swap":
            params["reduceOnly"] = True
        price = None if request.limit_price is None else str(request.limit_price)
        try:
            with self._lock:
                answer = self.client.create_order(
                    unified, request.order_type, request.side, str(request.quantity), price, params
                )
        except RATE_LIMITS as exc:
            raise VenueRateLimited(*self._summary(exc)) from None
        except REFUSALS as exc:
            summary, code = error_summary(exc, self.redact)
            raise VenueRejected(summary, code=code) from None
        except (ccxt.BaseError, OSError) as exc:
            # Timeout, connection error, 5xx, or an error ccxt could not classify: it may exist.
            raise VenueUnknown(*self._summary(exc)) from None
        if not answer or not answer.get("id"):
            raise VenueUnknown("empty answer to create order")
        return self._order(answer, request.client_order_id)

    def fetch_order_by_client_id(self, *, symbol: str, client_order_id: str) -> VenueOrder:
        unified = self.market_symbol(symbol)
        try:
            with self._lock:
                answer = self.client.fetch_order_with_client_order_id(client_order_id, unified)
        except ccxt.OrderNotFound as exc:
            raise VenueOrderNotFound(*self._summary(exc)) from None
        except ccxt.InvalidOrder as exc:
            summary, code = error_summary(exc, self.redact)
            if code in self.not_found_codes:
                raise VenueOrderNotFound(summary, code=code) from None
            raise VenueUnavailable(summary, code=code) from None
        except (ccxt.BaseError, OSError) as exc:
            raise VenueUnavailable(*self._summary(exc)) from None
        if not answer or not answer.get("id"):
            raise VenueUnavailable("empty answer to order look-up")
        found = answer.get("clientOrderId")
        if found is not None and found != client_order_id:
            raise VenueUnavailable("look-up answered with another order")
        return self._order(answer, client_order_id)

    def fetch_fills(self, *, symbol: str, venue_order_id: str) -> list[VenueFill]:
        unified = self.market_symbol(symbol)
        try:
            with self._lock:
                trades = self.client.fetch_order_trades(venue_order_id, unified)
        except (ccxt.BaseError, OSError) as exc:
            raise VenueUnavailable(*self._summary(exc)) from None
        quote = self.client.markets[unified]["quote"]
        fills = []
        for trade in trades:
            if str(trade.get("order")) != str(venue_order_id):
                continue  # an exchange that ignores the order filter
            fee = trade.get("fee") or {}
            info = trade.get("info") or {}
            fills.append(
                VenueFill(
                    trade_id=str(trade["id"]),
                    venue_order_id=str(venue_order_id),
                    price=to_decimal(trade["price"]),
                    quantity=to_decimal(trade["amount"]),
                    fee=to_decimal(fee.get("cost")) or Decimal(0),
                    # WEEX states the commission asset; ccxt guesses it for spot (base on buys).
                    fee_asset=info.get("commissionAsset") or fee.get("currency") or quote,
                    filled_at=datetime.fromtimestamp((trade.get("timestamp") or time.time() * 1000) / 1000, dt_timezone.utc),
                )
            )
        return fills

    def cancel(self, *, symbol: str, client_order_id: str) -> VenueOrder:
        """DELETE the order by client order id (origClientOrderId). ccxt marks whatever comes
        back `canceled`, so the venue's own answer is read instead: spot says
        {"status": "CANCELED"}, contracts {"success": true}. Anything else proves nothing."""
        unified = self.market_symbol(symbol)
        try:
            with self._lock:
                answer = self.client.cancel_order(None, unified, {"clientOrderId": client_order_id})
        except ccxt.OrderNotFound as exc:
            raise VenueOrderNotFound(*self._summary(exc)) from None
        except RATE_LIMITS as exc:
            raise VenueRateLimited(*self._summary(exc)) from None
        except ccxt.InvalidOrder as exc:
            summary, code = error_summary(exc, self.redact)
            if code in self.not_found_codes:
                raise VenueOrderNotFound(summary, code=code) from None
            raise VenueRejected(summary, code=code) from None
        except REFUSALS as exc:
            summary, code = error_summary(exc, self.redact)
            raise VenueRejected(summary, code=code) from None
        except (ccxt.BaseError, OSError) as exc:
            # Timeout, connection error, 5xx: the cancel may or may not have happened.
            raise VenueUnknown(*self._summary(exc)) from None
        info = (answer or {}).get("info") or {}
        confirmed = str(info.get("status", "")).upper() in ("CANCELED", "CANCELLED") or info.get("success") in (True, "true")
        if not confirmed:
            raise VenueUnknown("cancel answer does not confirm the cancel")
        return VenueOrder(
            client_order_id=client_order_id,
            venue_order_id=str(answer.get("id") or ""),
            status="cancelled",
        )

    def health(self, *, probe: bool = False) -> dict:
        """Markets readable (loaded once; `probe` reloads them: three public GETs)."""
        started = time.monotonic()
        try:
            with self._lock:
                self.client.load_markets(reload=probe)
            status = "ok"
        except (ccxt.BaseError, OSError):
            status = "down"
        return {
            "venue": self.name,
            "exchange": self.exchange_id,
            "live": self.live,
            "demo": self.demo,
            "market": self.market_type,
            "status": status,
            "latency_ms": int((time.monotonic() - started) * 1000),
        }

    # --- helpers ---

    def _summary(self, exc) -> tuple[str, str | None]:
        return error_summary(exc, self.redact)

    def _order(self, answer: dict, client_order_id: str) -> VenueOrder:
        return VenueOrder(
            client_order_id=answer.get("clientOrderId") or client_order_id,
            venue_order_id=str(answer["id"]),
            status=_status(answer),
            quantity=to_decimal(answer.get("amount")),
            filled_quantity=to_decimal(answer.get("filled")),
            average_price=to_decimal(answer.get("average")),
        )
