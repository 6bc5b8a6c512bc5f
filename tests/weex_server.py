"""A loopback HTTP server that speaks WEEX's REST protocol, for tests of the exchange client.

It serves the endpoints ccxt 4.5.90's `weex` class uses (see /work/shared/WEEX.md),
the public spot market data a bot reads (klines, 24 h tickers, depth) from candles the test
gives it, checks signatures the way WEEX does, keeps orders and fills in memory, and can be
told to misbehave (time out after accepting, 5xx, 429, rejections) so the client's
recovery paths can be tested against real HTTP instead of mocks.

Plain stdlib, no Django. Every quantity and price is a Decimal.
"""

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ['WeexTestServer', 'RecordedRequest', 'sign', 'CREATE_FAULTS', 'LOOKUP_FAULTS', 'CANCEL_FAULTS', 'FILL_MODES']

COMMISSION_RATE = Decimal('0.001')
MAX_CLIENT_ORDER_ID = 40

FILL_MODES = ('fill', 'partial', 'rest', 'cancel_partial')
CREATE_FAULTS = (
    'timeout_after_accept', '5xx_after_accept', '504_after_accept',
    '429', 'reject', 'insufficient', '503_before_accept',
)
LOOKUP_FAULTS = ('timeout', '5xx', '504', 'not_found')
# *_after_cancel: the order is cancelled, then the answer is lost; *_before_cancel: nothing happens.
CANCEL_FAULTS = ('timeout_after_cancel', '5xx_after_cancel', 'timeout_before_cancel', '429')


def sign(secret: str, prehash: str) -> str:
    """WEEX's ACCESS-SIGN: base64(HMAC-SHA256(secret, prehash))."""
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Market:
    symbol: str
    base: str
    quote: str
    step: Decimal
    tick: Decimal


def _places(unit: Decimal) -> int:
    return -unit.as_tuple().exponent


SPOT_MARKETS = {
    m.symbol: m for m in (
        Market('BTCUSDT', 'BTC', 'USDT', step=Decimal('0.0001'), tick=Decimal('0.01')),
        Market('ETHUSDT', 'ETH', 'USDT', step=Decimal('0.001'), tick=Decimal('0.01')),
    )
}
# Contracts describe precision as decimal places; ccxt turns them into tick sizes.
CONTRACT_MARKETS = {
    m.symbol: m for m in (
        Market('BTCUSDT', 'BTC', 'USDT', step=Decimal('0.001'), tick=Decimal('0.1')),
        Market('ETHUSDT', 'ETH', 'USDT', step=Decimal('0.001'), tick=Decimal('0.01')),
    )
}


def _spot_info(m: Market) -> dict:
    return {
        'symbol': m.symbol, 'status': 'TRADING', 'baseAsset': m.base, 'quoteAsset': m.quote,
        'tickSize': m.tick, 'stepSize': m.step, 'minTradeAmount': m.step, 'maxTradeAmount': Decimal('99999'),
        'takerFeeRate': COMMISSION_RATE, 'makerFeeRate': COMMISSION_RATE,
        # ccxt treats a missing enableTrade as an inactive market.
        'enableTrade': True,
    }


def _contract_info(m: Market) -> dict:
    return {
        'symbol': m.symbol, 'baseAsset': m.base, 'quoteAsset': m.quote, 'marginAsset': m.quote,
        'pricePrecision': str(_places(m.tick)), 'quantityPrecision': str(_places(m.step)),
        # As on WEEX: ccxt reads this as contractSize, but quantities stay in base units.
        'contractVal': m.step, 'minOrderSize': m.step, 'maxOrderSize': Decimal('1000000'),
        'minLeverage': '1', 'maxLeverage': '100',
        'takerFeeRate': COMMISSION_RATE, 'makerFeeRate': COMMISSION_RATE,
    }


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query
    query: str  # raw, as received
    headers: dict
    body: str  # raw, as received

    def json(self):
        return json.loads(self.body, parse_float=Decimal) if self.body else None


class _Reply(Exception):
    """Ends request handling early with this status and JSON payload (None: empty body)."""

    def __init__(self, status, payload=None):
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def _error(status, code, msg):
    return _Reply(status, {'code': code, 'msg': msg})


def _json_default(value):
    if isinstance(value, Decimal):
        # normalize() drops trailing zeros from products (65.000); 'f' keeps exponents such as 6.5E+4 out.
        return format(value.normalize(), 'f')
    raise TypeError(f'cannot serialize {type(value).__name__}')


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length).decode() if length else ''
        status, payload = self.server.weex._dispatch(self.command, self.path, self.headers, body)
        data = b'' if payload is None else json.dumps(payload, default=_json_default).encode()
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout faults); nothing to tell it

    do_POST = do_DELETE = do_GET

    def log_message(self, format, *args):
        pass  # keep test output clean


class _HTTPServer(ThreadingHTTPServer):
    # Daemon handler threads: a handler sleeping in a timeout fault must not keep stop() or the process waiting.
    daemon_threads = True
    # socketserver's default backlog of 5 drops bursts of connects, which then wait a 1 s SYN retry.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # clients that time out drop connections on purpose


class WeexTestServer:
    """WEEX on loopback. Starts serving on construction; use as a context manager or call stop()."""

    def __init__(self, api_key='k', secret='s', passphrase='p', host='127.0.0.1', port=0, fill_mode='fill',
                 spot_markets=None):
        self.spot_markets = dict(spot_markets or SPOT_MARKETS)
        # symbol -> [[open time ms, open, high, low, close, volume], ...] in time order, made by the test.
        # Only candles already open are served, as an exchange serves them; the last one is still forming.
        self.candles = {}
        self.api_key = api_key
        self.secret = secret
        self.passphrase = passphrase
        self.fill_mode = fill_mode
        # Where MARKET orders fill and what decides if a LIMIT order is marketable.
        self.market_price = {'BTCUSDT': Decimal('65000'), 'ETHUSDT': Decimal('3500')}
        # Optional per-symbol override of every fill price.
        self.fill_price = {}
        self.timeout_sleep = 2.0
        self.timestamp_window_ms = 30_000
        # How an unknown contract order is reported: 'order_error' (errorMsg FAILED_ORDER_NOT_FOUND,
        # ccxt -> OrderNotFound) or 'code' ({"code":-3200}, which ccxt maps to InvalidOrder).
        self.contract_not_found = 'order_error'
        self.create_attempts = 0
        self.rejected_auth = 0

        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._orders = {}
        self._orders_by_client_id = {}
        self._trades = []
        self._requests = []
        self._create_faults = deque()
        self._lookup_faults = deque()
        self._cancel_faults = deque()
        # 18-digit ids like WEEX's, so a client that squeezes them through a float shows it.
        self._order_ids = itertools.count(736557215397183001)
        self._trade_ids = itertools.count(836557215397183001)
        self._client_ids = itertools.count(1)
        self._last_ms = 0

        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.weex = self
        self.url = 'http://%s:%d' % self._httpd.server_address[:2]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={'poll_interval': 0.05}, name='weex-test-server', daemon=True,
        )
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self._stopping.is_set():
            return
        self._stopping.set()  # wakes handlers sleeping in a timeout fault
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # --- test controls ---

    def inject(self, kind, count=1):
        """Apply a fault to the next `count` order creates that pass auth, validation and the duplicate check."""
        if kind not in CREATE_FAULTS:
            raise ValueError(f'unknown create fault {kind!r}; one of {CREATE_FAULTS}')
        with self._lock:
            self._create_faults.extend([kind] * count)

    def inject_lookup(self, kind, count=1):
        """Apply a fault to the next `count` authenticated GETs of a single order."""
        if kind not in LOOKUP_FAULTS:
            raise ValueError(f'unknown lookup fault {kind!r}; one of {LOOKUP_FAULTS}')
        with self._lock:
            self._lookup_faults.extend([kind] * count)

    def inject_cancel(self, kind, count=1):
        """Apply a fault to the next `count` authenticated cancels (DELETE of one order)."""
        if kind not in CANCEL_FAULTS:
            raise ValueError(f'unknown cancel fault {kind!r}; one of {CANCEL_FAULTS}')
        with self._lock:
            self._cancel_faults.extend([kind] * count)

    def cancel_requests(self, client_order_id=None):
        """The DELETEs of single orders received (of one client order id, when given)."""
        return [
            r for r in self.requests
            if r.method == 'DELETE' and r.path in ('/api/v3/order', '/capi/v3/order')
            and (client_order_id is None or f'origClientOrderId={client_order_id}' in r.query.split('&'))
        ]

    def complete_partial(self, client_order_id):
        """Fill what is left of an open order (partial or resting) with one more trade."""
        with self._lock:
            order = self._orders_by_client_id.get(client_order_id)
            if order is None or order['status'] != 'NEW':
                raise ValueError(f'no open order with client id {client_order_id!r}')
            self._fill(order, order['origQty'] - order['executedQty'], maker=True)
            order['status'] = 'FILLED'

    # --- inspection (snapshots, safe to read while handlers run) ---

    @property
    def orders(self):
        with self._lock:
            return {order_id: dict(order) for order_id, order in self._orders.items()}

    @property
    def orders_by_client_id(self):
        with self._lock:
            return {cid: dict(order) for cid, order in self._orders_by_client_id.items()}

    @property
    def trades(self):
        with self._lock:
            return [dict(trade) for trade in self._trades]

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def order_count(self, client_order_id):
        # Counted over all orders, not the index, so a double insert would show.
        with self._lock:
            return sum(1 for order in self._orders.values() if order['clientOrderId'] == client_order_id)

    # --- request handling ---

    def _dispatch(self, method, target, headers, body):
        url = urlsplit(target)
        with self._lock:
            self._requests.append(RecordedRequest(method, url.path, url.query, dict(headers.items()), body))
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        kind = 'contract' if url.path.startswith('/capi/') else 'spot'
        routes = {
            ('GET', '/api/v3/coins'): lambda: [],
            ('GET', '/api/v3/exchangeInfo'): lambda: {'symbols': [_spot_info(m) for m in self.spot_markets.values()]},
            ('GET', '/api/v3/market/klines'): lambda: self._klines(query),
            ('GET', '/api/v3/market/ticker/24hr'): lambda: self._tickers(query),
            ('GET', '/api/v3/market/depth'): lambda: self._depth(query),
            ('GET', '/capi/v3/market/exchangeInfo'): lambda: {
                'symbols': [_contract_info(m) for m in CONTRACT_MARKETS.values()]},
        }
        private_routes = {
            'POST': lambda: self._create_order(kind, body),
            'GET': lambda: self._get_order(kind, query),
            'DELETE': lambda: self._cancel_order(kind, query),
        }
        try:
            if (method, url.path) in routes:
                return 200, routes[(method, url.path)]()
            if url.path in ('/api/v3/order', '/capi/v3/order') and method in private_routes:
                if method == 'POST':
                    with self._lock:
                        self.create_attempts += 1
                self._authenticate(method, target, headers, body)
                return private_routes[method]()
            if (method, url.path) in (('GET', '/api/v3/myTrades'), ('GET', '/capi/v3/userTrades')):
                self._authenticate(method, target, headers, body)
                return 200, self._list_trades(kind, query)
            raise _error(404, -1000, f'unknown endpoint {method} {url.path}')
        except _Reply as reply:
            return reply.status, reply.payload
        except Exception as exc:
            # A bug here should read as a loud exchange error, not as a dropped connection (a NetworkError).
            return 500, {'code': -1000, 'msg': f'weex test server bug: {exc!r}'}

    # --- public market data (spot) ---

    def _spot_symbol(self, query):
        symbol = query.get('symbol')
        if symbol not in self.spot_markets:
            raise _error(400, -1121, f'Invalid symbol {symbol!r}')
        return symbol

    def _klines(self, query):
        """Like WEEX, ccxt sends only symbol and interval; the interval is the test's candles' own."""
        now_ms = int(time.time() * 1000)
        opened = [c for c in self.candles.get(self._spot_symbol(query), []) if c[0] <= now_ms]
        return opened[-1000:]

    def _tickers(self, query):
        symbols = [self._spot_symbol(query)] if 'symbol' in query else list(self.spot_markets)
        now_ms = int(time.time() * 1000)
        return [self._ticker(symbol, now_ms) for symbol in symbols]

    def _ticker(self, symbol, now_ms):
        price = self.market_price[symbol]
        return {
            'symbol': symbol, 'lastPrice': price, 'bidPrice': price, 'bidQty': Decimal('100'),
            'askPrice': price, 'askQty': Decimal('100'), 'openPrice': price, 'highPrice': price,
            'lowPrice': price, 'volume': Decimal('1000'), 'quoteVolume': price * 1000,
            'openTime': now_ms - 86_400_000, 'closeTime': now_ms,
        }

    def _depth(self, query):
        """One level each side at the market price, deep enough for any test order."""
        price = self.market_price[self._spot_symbol(query)]
        return {'asks': [[price, Decimal('100')]], 'bids': [[price, Decimal('100')]], 'lastUpdateId': int(time.time() * 1000)}

    def _authenticate(self, method, target, headers, body):
        key, signature = headers.get('ACCESS-KEY'), headers.get('ACCESS-SIGN')
        timestamp, passphrase = headers.get('ACCESS-TIMESTAMP'), headers.get('ACCESS-PASSPHRASE')
        refusal = None
        if not key:
            refusal = (-1040, 'ACCESS_KEY header is required.')
        elif not signature:
            refusal = (-1041, 'ACCESS_SIGN header is required.')
        elif not timestamp:
            refusal = (-1042, 'ACCESS_TIMESTAMP header is required.')
        elif key != self.api_key:
            refusal = (-1044, 'Invalid ACCESS_KEY.')
        elif passphrase != self.passphrase:
            refusal = (-1049, 'API key or passphrase incorrect.')
        elif not timestamp.isdigit():
            refusal = (-1043, 'Invalid ACCESS_TIMESTAMP.')
        elif abs(time.time() * 1000 - int(timestamp)) > self.timestamp_window_ms:
            # WEEX's own code for this; ccxt maps it to BadRequest, not AuthenticationError.
            refusal = (-1046, 'Request timestamp expired.')
        else:
            # The raw target and body as received: re-serializing could hide a client's encoding bug.
            expected = sign(self.secret, timestamp + method + target + body)
            if not hmac.compare_digest(expected, signature):
                refusal = (-1047, 'API authentication failed.')
        if refusal:
            with self._lock:
                self.rejected_auth += 1
            raise _error(401, *refusal)

    def _create_order(self, kind, body):
        try:
            params = json.loads(body or '{}', parse_float=Decimal)
        except ValueError:
            raise _error(400, -1135, 'Invalid JSON request.')
        if not isinstance(params, dict):
            raise _error(400, -1135, 'Invalid JSON request.')
        order = self._validated_order(kind, params)

        with self._lock:
            cid = order['clientOrderId']
            if cid in self._orders_by_client_id:
                raise _error(400, -1180, 'duplicate clientOrderId')
            fault = self._create_faults.popleft() if self._create_faults else None
            if fault == '429':
                raise _Reply(429, {'code': 429})  # no msg, so ccxt goes by the status
            if fault == '503_before_accept':
                raise _Reply(503, None)
            if fault == 'reject':
                raise _error(400, -1116, 'invalid order type')
            if fault == 'insufficient':
                raise _error(400, -1054, 'amount not enough')
            order['orderId'] = next(self._order_ids)
            order['time'] = order['updateTime'] = self._now_ms()
            self._orders[order['orderId']] = order
            self._orders_by_client_id[cid] = order
            self._match(order)
            reply = {'symbol': order['symbol'], 'orderId': order['orderId'],
                     'clientOrderId': cid, 'transactTime': order['time']}

        # Faults after the order is stored: the client cannot tell whether it exists.
        if fault == 'timeout_after_accept':
            self._stopping.wait(self.timeout_sleep)
        elif fault == '5xx_after_accept':
            raise _Reply(502, None)
        elif fault == '504_after_accept':
            raise _Reply(504, None)
        return 200, reply

    def _validated_order(self, kind, params):
        markets = self.spot_markets if kind == 'spot' else CONTRACT_MARKETS
        market = markets.get(params.get('symbol'))
        if market is None:
            raise _error(400, -1121, 'Invalid symbol.')
        side, type_ = params.get('side'), params.get('type')
        if side not in ('BUY', 'SELL'):
            raise _error(400, -1117, 'Invalid side.')
        if type_ not in ('LIMIT', 'MARKET'):
            raise _error(400, -1116, 'Invalid order type.')
        time_in_force = params.get('timeInForce', 'GTC')
        if time_in_force not in ('GTC', 'IOC', 'FOK'):
            raise _error(400, -1115, 'Invalid timeInForce.')
        quantity = self._positive_decimal(params.get('quantity'), 'quantity')
        if quantity % market.step:
            raise _error(400, -1160, f'precision: quantity must be a multiple of {market.step}')
        price = None
        if type_ == 'LIMIT':
            if params.get('price') is None:
                raise _error(400, -1142, 'Parameter is invalid: price is required for LIMIT orders')
            price = self._positive_decimal(params['price'], 'price')
            if price % market.tick:
                raise _error(400, -1160, f'precision: price must be a multiple of {market.tick}')
        cid = params.get('newClientOrderId')
        if cid is None:
            cid = f'weex-server-{next(self._client_ids)}'
        if not isinstance(cid, str) or not cid or len(cid) > MAX_CLIENT_ORDER_ID:
            raise _error(400, -1180, 'client_oid length must not exceed 40')
        order = {
            'kind': kind, 'symbol': market.symbol, 'clientOrderId': cid, 'side': side, 'type': type_,
            'timeInForce': time_in_force, 'price': price, 'origQty': quantity,
            'executedQty': Decimal('0'), 'cumQuote': Decimal('0'), 'status': 'NEW',
            'positionSide': None, 'reduceOnly': None,
        }
        if kind == 'contract':
            order['positionSide'] = params.get('positionSide') or ('LONG' if side == 'BUY' else 'SHORT')
            order['reduceOnly'] = bool(params.get('reduceOnly', False))
        return order

    @staticmethod
    def _positive_decimal(value, name):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _error(400, -1142, f'Parameter is invalid: {name}')
        if not number.is_finite() or number <= 0:
            raise _error(400, -1142, f'Parameter is invalid: {name}')
        return number

    def _match(self, order):
        """Fill a new order according to fill_mode. Caller holds the lock."""
        quantity = order['origQty']
        if self.fill_mode not in FILL_MODES:
            raise ValueError(f'unknown fill_mode {self.fill_mode!r}')
        to_fill = Decimal('0')
        if self.fill_mode != 'rest' and self._marketable(order):
            to_fill = quantity
            if self.fill_mode in ('partial', 'cancel_partial'):
                # Half, rounded down to the step, so the fill is a valid quantity on its own.
                step = (self.spot_markets if order['kind'] == 'spot' else CONTRACT_MARKETS)[order['symbol']].step
                to_fill = (quantity / 2 / step).to_integral_value(ROUND_DOWN) * step
        if order['timeInForce'] == 'FOK' and to_fill < quantity:
            to_fill = Decimal('0')
        if to_fill:
            self._fill(order, to_fill, maker=False)
        if order['executedQty'] == quantity:
            order['status'] = 'FILLED'
        elif self.fill_mode == 'cancel_partial' and to_fill:
            order['status'] = 'CANCELED'
        elif order['timeInForce'] in ('IOC', 'FOK'):
            order['status'] = 'CANCELED'

    def _marketable(self, order):
        if order['type'] == 'MARKET':
            return True
        market = self.market_price[order['symbol']]
        return order['price'] >= market if order['side'] == 'BUY' else order['price'] <= market

    def _fill(self, order, quantity, maker):
        """Record one trade for `quantity` of `order`. Caller holds the lock."""
        price = self.fill_price.get(order['symbol'])
        if price is None:
            price = order['price'] if order['type'] == 'LIMIT' else self.market_price[order['symbol']]
        quote = quantity * price
        now = self._now_ms()
        self._trades.append({
            'kind': order['kind'], 'id': next(self._trade_ids), 'orderId': order['orderId'],
            'symbol': order['symbol'], 'side': order['side'], 'positionSide': order['positionSide'],
            'price': price, 'qty': quantity, 'quoteQty': quote,
            'commission': quote * COMMISSION_RATE, 'commissionAsset': 'USDT', 'maker': maker, 'time': now,
        })
        order['executedQty'] += quantity
        order['cumQuote'] += quote
        order['updateTime'] = now

    def _now_ms(self):
        # Strictly increasing, so fills never share a timestamp and `since` paging is exact.
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms

    def _get_order(self, kind, query):
        with self._lock:
            fault = self._lookup_faults.popleft() if self._lookup_faults else None
        if fault == 'timeout':
            self._stopping.wait(self.timeout_sleep)
        elif fault == '5xx':
            raise _Reply(502, None)
        elif fault == '504':
            raise _Reply(504, None)
        elif fault == 'not_found':
            raise self._not_found(kind, query)
        with self._lock:
            return 200, self._render_order(self._find_order(kind, query))

    def _cancel_order(self, kind, query):
        """As WEEX's v3 DELETE answers: spot {"orderId"|"origClientOrderId", "status": "CANCELED"}
        (keyed as it was asked for), contracts {"orderId", "origClientOrderId", "success": true,
        "errorCode": "", "errorMessage": ""}. An order that is not open is not found."""
        with self._lock:
            fault = self._cancel_faults.popleft() if self._cancel_faults else None
        if fault == '429':
            raise _Reply(429, {'code': 429})
        if fault == 'timeout_before_cancel':
            self._stopping.wait(self.timeout_sleep)
            return 200, {}
        with self._lock:
            order = self._find_order(kind, query)
            if order['status'] != 'NEW':
                raise self._not_found(kind, query)  # only open orders can be cancelled
            order['status'] = 'CANCELED'
            order['updateTime'] = self._now_ms()
            if kind == 'spot':
                ref = ({'origClientOrderId': query['origClientOrderId']} if query.get('origClientOrderId')
                       else {'orderId': order['orderId']})
                reply = {**ref, 'status': 'CANCELED'}
            else:
                reply = {'orderId': str(order['orderId']), 'origClientOrderId': query.get('origClientOrderId', ''),
                         'success': True, 'errorCode': '', 'errorMessage': ''}
        if fault == 'timeout_after_cancel':
            self._stopping.wait(self.timeout_sleep)
        elif fault == '5xx_after_cancel':
            raise _Reply(502, None)
        return 200, reply

    def _find_order(self, kind, query):
        order_id, cid = query.get('orderId'), query.get('origClientOrderId')
        if order_id:
            order = self._orders.get(int(order_id)) if order_id.isdigit() else None
        elif cid:
            order = self._orders_by_client_id.get(cid)
        else:
            raise _error(400, -1140, 'Either orderId or origClientOrderId must be sent.')
        if order is None or order['kind'] != kind:
            raise self._not_found(kind, query)
        return order

    def _not_found(self, kind, query):
        if kind == 'spot':
            return _error(400, -2200, 'Order does not exist.')
        if self.contract_not_found == 'code':
            return _error(400, -3200, 'Order does not exist.')
        # An order object carrying the error, with HTTP 200: a 4xx without msg would read as ExchangeNotAvailable.
        ref = {'orderId': query['orderId']} if query.get('orderId') else {
            'origClientOrderId': query.get('origClientOrderId')}
        return _Reply(200, {**ref, 'status': 'FAILED', 'errorMsg': 'FAILED_ORDER_NOT_FOUND'})

    def _render_order(self, order):
        executed = order['executedQty']
        rendered = {
            'symbol': order['symbol'], 'orderId': order['orderId'], 'clientOrderId': order['clientOrderId'],
            'price': order['price'] if order['price'] is not None else Decimal('0'),
            'origQty': order['origQty'], 'executedQty': executed,
            ('cummulativeQuoteQty' if order['kind'] == 'spot' else 'cumQuote'): order['cumQuote'],
            'avgPrice': order['cumQuote'] / executed if executed else Decimal('0'),
            'status': order['status'], 'timeInForce': order['timeInForce'], 'type': order['type'],
            'side': order['side'], 'time': order['time'], 'updateTime': order['updateTime'],
        }
        if order['kind'] == 'contract':
            rendered['positionSide'] = order['positionSide']
            rendered['reduceOnly'] = order['reduceOnly']
        return rendered

    def _list_trades(self, kind, query):
        symbol = query.get('symbol')
        if kind == 'spot' and not symbol:
            raise _error(400, -1142, 'Parameter is invalid: symbol is required')
        try:
            order_id = int(query['orderId']) if query.get('orderId') else None
            start = int(query.get('startTime') or 0)
            end = int(query['endTime']) if query.get('endTime') else None
            limit = int(query.get('limit') or 500)
        except ValueError:
            raise _error(400, -1142, 'Parameter is invalid.')
        if not 1 <= limit <= 1000:
            raise _error(400, -1140, 'limit must be between 1 and 1000.')
        with self._lock:
            rows = [
                t for t in self._trades
                if t['kind'] == kind and (not symbol or t['symbol'] == symbol)
                and (order_id is None or t['orderId'] == order_id)
                and t['time'] >= start and (end is None or t['time'] <= end)
            ]
        # From startTime: the first `limit` after it (so paging forward works); otherwise the latest.
        rows = rows[:limit] if query.get('startTime') else rows[-limit:]
        return [self._render_trade(t) for t in rows]

    @staticmethod
    def _render_trade(trade):
        common = {
            'symbol': trade['symbol'], 'id': trade['id'], 'orderId': trade['orderId'],
            'price': trade['price'], 'qty': trade['qty'], 'quoteQty': trade['quoteQty'],
            'commission': trade['commission'], 'commissionAsset': trade['commissionAsset'], 'time': trade['time'],
        }
        if trade['kind'] == 'spot':
            return {**common, 'isBuyer': trade['side'] == 'BUY'}
        return {
            **common, 'buyer': trade['side'] == 'BUY', 'side': trade['side'],
            'positionSide': trade['positionSide'], 'maker': trade['maker'], 'realizedPnl': Decimal('0'),
        }
