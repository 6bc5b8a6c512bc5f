"""The WEEX test server, driven by the real ccxt.weex client (ccxt 4.5.90).

These pin down both the server's behaviour and how ccxt reacts to it, so the exchange
client's tests can rely on "fault X reaches the client as exception Y".
"""

import threading
import time
from decimal import Decimal

import ccxt
import pytest

from tests.weex_server import SPOT_MARKETS, Market, WeexTestServer, sign

SPOT = 'BTC/USDT'
SWAP = 'BTC/USDT:USDT'


@pytest.fixture
def server():
    with WeexTestServer(api_key='k', secret='s', passphrase='p') as server:
        # Longer than the client's timeout, short enough to keep the suite fast.
        server.timeout_sleep = 1.0
        yield server


def make_client(server, secret='s', api_key='k', password='p'):
    """ccxt.weex set up as WEEX.md "Client setup" says: no rate limiter, short timeout, all URLs local."""
    client = ccxt.weex({
        'apiKey': api_key, 'secret': secret, 'password': password,
        'enableRateLimit': False, 'timeout': 500,
    })
    client.urls['api'] = {key: server.url for key in ('public', 'private', 'contract', 'contractPrivate')}
    return client


@pytest.fixture
def client(server):
    client = make_client(server)
    client.load_markets()
    return client


def order_posts(server):
    return [r for r in server.requests if r.method == 'POST']


def test_sign_matches_the_worked_example_in_weex_md():
    prehash = ('1700000000000POST/api/v3/order{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT",'
               '"quantity":"0.001","price":"65000","newClientOrderId":"cid-1"}')
    assert sign('s', prehash) == 'P4ARRp7Bi8xCT9udMJlcxStDLeUs9BXApAYacgniGWA='
    assert sign('s', '1700000000000GET/api/v3/order?origClientOrderId=cid-1') == \
        'k6QchpP/KKoJA1gdcGfL2q3HTbhQieDcc1hCI0lQM9U='


def test_load_markets_reads_spot_and_swap_markets_from_three_unsigned_gets(server):
    client = make_client(server)
    markets = client.load_markets()

    assert [(r.method, r.path) for r in server.requests] == [
        ('GET', '/api/v3/coins'), ('GET', '/api/v3/exchangeInfo'), ('GET', '/capi/v3/market/exchangeInfo')]
    assert not any('ACCESS-SIGN' in r.headers for r in server.requests)
    spot, swap = markets[SPOT], markets[SWAP]
    assert spot['spot'] and spot['active']
    assert spot['precision'] == {'amount': 0.0001, 'price': 0.01}
    assert markets['ETH/USDT']['precision'] == {'amount': 0.001, 'price': 0.01}
    assert swap['swap'] and swap['linear'] and swap['settle'] == 'USDT'
    assert swap['precision'] == {'amount': 0.001, 'price': 0.1}


def test_it_stores_a_spot_limit_order_sent_with_a_valid_signature(server, client):
    order = client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-spot'})

    stored = server.orders[int(order['id'])]
    assert order['clientOrderId'] == 'cid-spot'
    assert stored['kind'] == 'spot'
    assert (stored['side'], stored['type'], stored['origQty'], stored['price']) == \
        ('BUY', 'LIMIT', Decimal('0.001'), Decimal('60000'))
    assert stored['status'] == 'NEW'  # below the 65000 market, so it rests
    post, = order_posts(server)
    assert post.path == '/api/v3/order'
    headers = post.headers
    assert (headers['ACCESS-KEY'], headers['ACCESS-PASSPHRASE']) == ('k', 'p')
    assert headers['ACCESS-SIGN'] == sign('s', headers['ACCESS-TIMESTAMP'] + 'POST' + post.path + post.body)
    assert server.rejected_auth == 0


def test_it_stores_a_swap_limit_order_with_its_position_side(server, client):
    order = client.create_order(SWAP, 'limit', 'sell', 0.002, 66000.0, {'clientOrderId': 'cid-swap'})

    stored = server.orders_by_client_id['cid-swap']
    assert stored['orderId'] == int(order['id'])
    assert (stored['kind'], stored['positionSide'], stored['timeInForce']) == ('contract', 'SHORT', 'GTC')
    post, = order_posts(server)
    assert post.path == '/capi/v3/order'
    assert post.json()['quantity'] == '0.002'


def test_it_accepts_signed_lookups_with_a_query_string(server, client):
    client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-q'})

    found = client.fetch_order(None, SPOT, {'clientOrderId': 'cid-q'})

    get = server.requests[-1]
    assert (get.method, get.path, get.query) == ('GET', '/api/v3/order', 'origClientOrderId=cid-q')
    assert get.headers['ACCESS-SIGN'] == sign(
        's', get.headers['ACCESS-TIMESTAMP'] + 'GET' + get.path + '?' + get.query)
    assert found['clientOrderId'] == 'cid-q'
    assert found['status'] == 'open'


def test_it_refuses_a_request_signed_with_a_wrong_secret(server):
    client = make_client(server, secret='not-the-secret')
    client.load_markets()  # public, unsigned: still works

    with pytest.raises(ccxt.AuthenticationError):
        client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-bad'})

    assert server.rejected_auth == 1
    assert server.create_attempts == 1
    assert server.orders == {}


@pytest.mark.parametrize('credentials', [{'api_key': 'other'}, {'password': 'other'}])
def test_it_refuses_a_wrong_api_key_or_passphrase(server, credentials):
    client = make_client(server, **credentials)
    client.load_markets()

    with pytest.raises(ccxt.AuthenticationError):
        client.create_order(SPOT, 'limit', 'buy', 0.001, 60000)

    assert server.rejected_auth == 1
    assert server.orders == {}


def test_it_refuses_a_stale_timestamp_with_weex_code_that_ccxt_calls_bad_request(server, client):
    client.nonce = lambda: client.milliseconds() - 60_000

    with pytest.raises(ccxt.BadRequest, match='-1046'):
        client.fetch_my_trades(SPOT)

    assert server.rejected_auth == 1


@pytest.mark.parametrize('quantity, price', [('0.00015', '65000'), ('0.001', '65000.005')])
def test_it_rejects_quantities_and_prices_off_the_step_or_tick(server, client, quantity, price):
    # The implicit endpoint skips ccxt's own rounding, so the server's check is what is tested.
    with pytest.raises(ccxt.BadRequest, match='precision'):
        client.privatePostApiV3Order({'symbol': 'BTCUSDT', 'side': 'BUY', 'type': 'LIMIT',
                                      'quantity': quantity, 'price': price, 'newClientOrderId': 'cid-p'})

    assert server.orders == {}


def test_it_rejects_a_limit_order_without_a_price(server, client):
    with pytest.raises(ccxt.BadRequest):
        client.create_order(SPOT, 'limit', 'buy', 0.001, None)

    assert order_posts(server)[0].json()['price'] is None
    assert server.orders == {}


def test_it_rejects_a_client_order_id_longer_than_40_characters(server, client):
    with pytest.raises(ccxt.InvalidOrder):
        client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'x' * 41})

    assert server.orders == {}


def test_a_spot_order_whose_create_timed_out_is_found_by_client_order_id(server, client):
    server.inject('timeout_after_accept')

    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(SPOT, 'market', 'buy', 0.001, None, {'clientOrderId': 'cid-lost'})

    found = client.fetch_order(None, SPOT, {'clientOrderId': 'cid-lost'})
    assert found['clientOrderId'] == 'cid-lost'
    assert found['status'] == 'closed'
    assert found['filled'] == 0.001
    assert server.order_count('cid-lost') == 1


def test_a_swap_order_whose_create_timed_out_is_found_by_client_order_id(server, client):
    server.inject('timeout_after_accept')

    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(SWAP, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-lost-swap'})

    found = client.fetch_order_with_client_order_id('cid-lost-swap', SWAP)
    assert found['id'] == str(server.orders_by_client_id['cid-lost-swap']['orderId'])
    assert found['symbol'] == SWAP
    assert found['status'] == 'open'
    assert server.requests[-1].query == 'origClientOrderId=cid-lost-swap'


def test_a_5xx_after_accept_reads_as_exchange_not_available_and_the_order_exists_once(server, client):
    server.inject('5xx_after_accept')

    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-5xx'})

    assert server.order_count('cid-5xx') == 1


def test_a_504_after_accept_reads_as_request_timeout_and_the_order_exists(server, client):
    server.inject('504_after_accept')

    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-504'})

    assert server.order_count('cid-504') == 1


@pytest.mark.parametrize('fault, error', [
    ('429', ccxt.RateLimitExceeded),
    ('503_before_accept', ccxt.ExchangeNotAvailable),
    ('reject', ccxt.InvalidOrder),
    ('insufficient', ccxt.InsufficientFunds),
])
def test_faults_before_accept_store_nothing(server, client, fault, error):
    server.inject(fault)

    with pytest.raises(error):
        client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-f'})

    assert server.order_count('cid-f') == 0


def test_a_fault_applies_to_as_many_creates_as_injected(server, client):
    server.inject('429', count=2)

    for _ in range(2):
        with pytest.raises(ccxt.RateLimitExceeded):
            client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-n'})
    client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-n'})

    assert server.create_attempts == 3
    assert server.order_count('cid-n') == 1


def test_it_refuses_unknown_fault_kinds():
    with WeexTestServer() as server:
        with pytest.raises(ValueError):
            server.inject('gremlins')
        with pytest.raises(ValueError):
            server.inject_lookup('gremlins')


def test_resending_a_client_order_id_does_not_create_a_second_order(server, client):
    client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-dup'})

    with pytest.raises(ccxt.InvalidOrder, match='duplicate'):
        client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-dup'})

    assert server.create_attempts == 2
    assert server.order_count('cid-dup') == 1


def test_ccxt_retrying_a_create_after_a_5xx_meets_the_duplicate_guard(server, client):
    # ccxt's own retry resends the same newClientOrderId, so the caller sees InvalidOrder
    # for an order that does exist.
    client.options['maxRetriesOnFailure'] = 1
    server.inject('5xx_after_accept')

    with pytest.raises(ccxt.InvalidOrder, match='duplicate'):
        client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-retry'})

    assert server.create_attempts == 2
    assert server.order_count('cid-retry') == 1


def test_it_stores_one_order_when_the_same_client_order_id_races(server):
    clients = [make_client(server) for _ in range(8)]
    for c in clients:
        c.load_markets()
    start = threading.Barrier(len(clients))
    outcomes = []

    def create(c):
        start.wait()
        try:
            c.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-race'})
            outcomes.append('created')
        except ccxt.InvalidOrder:
            outcomes.append('duplicate')
        except Exception as exc:  # shown by the assertion below instead of lost in the thread
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=create, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ['created'] + ['duplicate'] * 7
    assert server.order_count('cid-race') == 1


def test_a_marketable_limit_order_fills_at_its_price_with_a_fee(server, client):
    order = client.create_order(SPOT, 'limit', 'buy', 0.001, 65000, {'clientOrderId': 'cid-fill'})

    fetched = client.fetch_order(order['id'], SPOT)
    assert (fetched['status'], fetched['filled'], fetched['cost'], fetched['average']) == \
        ('closed', 0.001, 65.0, 65000.0)
    trade, = server.trades
    assert trade['orderId'] == int(order['id'])
    assert (trade['price'], trade['qty'], trade['commission'], trade['commissionAsset']) == \
        (Decimal('65000'), Decimal('0.001'), Decimal('0.065'), 'USDT')


def test_market_orders_fill_at_the_configured_market_price(server, client):
    server.market_price['ETHUSDT'] = Decimal('3456.78')

    order = client.create_order('ETH/USDT:USDT', 'market', 'sell', 0.01)

    fetched = client.fetch_order(order['id'], 'ETH/USDT:USDT')
    assert (fetched['status'], fetched['average']) == ('closed', 3456.78)
    assert fetched['info']['positionSide'] == 'SHORT'


def test_a_partial_fill_reads_as_open_with_a_filled_amount_until_completed(server, client):
    server.fill_mode = 'partial'
    order = client.create_order(SPOT, 'limit', 'buy', 0.001, 65000, {'clientOrderId': 'cid-part'})

    fetched = client.fetch_order(order['id'], SPOT)
    assert (fetched['status'], fetched['filled'], fetched['remaining']) == ('open', 0.0005, 0.0005)
    assert len(client.fetch_order_trades(order['id'], SPOT)) == 1

    server.complete_partial('cid-part')

    fetched = client.fetch_order(order['id'], SPOT)
    assert (fetched['status'], fetched['filled'], fetched['cost']) == ('closed', 0.001, 65.0)
    trades = client.fetch_order_trades(order['id'], SPOT)
    assert len(trades) == 2
    assert len({t['id'] for t in trades}) == 2
    assert {t['order'] for t in trades} == {order['id']}


def test_a_partial_swap_fill_reads_as_open(server, client):
    server.fill_mode = 'partial'
    order = client.create_order(SWAP, 'market', 'buy', 0.003)

    fetched = client.fetch_order(order['id'], SWAP)
    assert (fetched['status'], fetched['filled'], fetched['cost']) == ('open', 0.001, 65.0)


def test_cancel_partial_mode_leaves_a_canceled_order_with_a_fill(server, client):
    server.fill_mode = 'cancel_partial'
    order = client.create_order(SPOT, 'market', 'sell', 0.002)

    fetched = client.fetch_order(order['id'], SPOT)
    assert (fetched['status'], fetched['filled']) == ('canceled', 0.001)


def test_rest_mode_leaves_even_market_orders_unfilled(server, client):
    server.fill_mode = 'rest'
    order = client.create_order(SPOT, 'market', 'buy', 0.001)

    fetched = client.fetch_order(order['id'], SPOT)
    assert (fetched['status'], fetched['filled']) == ('open', 0.0)
    assert server.trades == []


def test_fetch_my_trades_returns_fills_with_fees(server, client):
    spot = client.create_order(SPOT, 'market', 'buy', 0.001)
    swap = client.create_order(SWAP, 'market', 'sell', 0.001)

    spot_trade, = client.fetch_my_trades(SPOT)
    swap_trade, = client.fetch_my_trades(SWAP)

    assert (spot_trade['order'], spot_trade['side'], spot_trade['cost']) == (spot['id'], 'buy', 65.0)
    # ccxt labels spot fees base-on-buy / quote-on-sell whatever commissionAsset says.
    assert spot_trade['fee'] == {'cost': 0.065, 'currency': 'BTC'}
    assert spot_trade['info']['commissionAsset'] == 'USDT'
    assert (swap_trade['order'], swap_trade['side'], swap_trade['takerOrMaker']) == (swap['id'], 'sell', 'taker')
    assert swap_trade['fee'] == {'cost': 0.065, 'currency': 'USDT'}


def test_fetch_my_trades_filters_by_time_and_limit(server, client):
    for _ in range(3):
        client.create_order(SPOT, 'market', 'buy', 0.001)
    times = [t['time'] for t in server.trades]

    assert len(client.fetch_my_trades(SPOT, since=times[1])) == 2
    assert [t['timestamp'] for t in client.fetch_my_trades(SPOT, since=times[0], limit=1)] == [times[0]]
    assert [t['timestamp'] for t in client.fetch_my_trades(SPOT, params={'until': times[0]})] == [times[0]]
    assert client.fetch_my_trades('ETH/USDT') == []


def test_an_unknown_spot_order_reads_as_order_not_found(client):
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order('123', SPOT)


def test_an_unknown_swap_order_reads_as_order_not_found_by_default(client):
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order_with_client_order_id('nope', SWAP)


def test_a_swap_not_found_sent_as_code_3200_reads_as_invalid_order_only(server, client):
    server.contract_not_found = 'code'

    with pytest.raises(ccxt.InvalidOrder) as raised:
        client.fetch_order('123', SWAP)

    assert not isinstance(raised.value, ccxt.OrderNotFound)


def test_cancel_marks_an_open_order_canceled_and_a_second_cancel_finds_nothing(server, client):
    order = client.create_order(SWAP, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-c'})

    canceled = client.cancel_order(order['id'], SWAP)

    assert canceled['status'] == 'canceled'
    assert server.orders[int(order['id'])]['status'] == 'CANCELED'
    assert server.requests[-1].method == 'DELETE'
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(None, SWAP, {'clientOrderId': 'cid-c'})


@pytest.mark.parametrize('fault, error', [
    ('5xx', ccxt.ExchangeNotAvailable),
    ('504', ccxt.RequestTimeout),
    ('timeout', ccxt.RequestTimeout),
    ('not_found', ccxt.OrderNotFound),
])
def test_lookup_faults_fail_one_fetch_and_the_retry_finds_the_order(server, client, fault, error):
    client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-l'})
    server.inject_lookup(fault)

    with pytest.raises(error):
        client.fetch_order(None, SPOT, {'clientOrderId': 'cid-l'})

    assert client.fetch_order(None, SPOT, {'clientOrderId': 'cid-l'})['clientOrderId'] == 'cid-l'


def test_stop_does_not_wait_for_a_handler_sleeping_in_a_timeout_fault():
    server = WeexTestServer()
    server.timeout_sleep = 60
    client = make_client(server)
    client.load_markets()
    server.inject('timeout_after_accept')
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(SPOT, 'market', 'buy', 0.001)

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 2
    with pytest.raises(ccxt.NetworkError):
        client.fetch_order('1', SPOT)


def test_a_spot_cancel_answers_as_weex_v3_does_keyed_as_it_was_asked(server, client):
    server.fill_mode = 'rest'
    by_id = client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-s1'})
    client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-s2'})

    first = client.cancel_order(by_id['id'], SPOT)
    second = client.cancel_order(None, SPOT, {'clientOrderId': 'cid-s2'})

    assert first['info'] == {'orderId': int(by_id['id']), 'status': 'CANCELED'}
    assert second['info'] == {'origClientOrderId': 'cid-s2', 'status': 'CANCELED'}
    assert len(server.cancel_requests('cid-s2')) == 1
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(None, SPOT, {'clientOrderId': 'cid-s2'})  # not open any more


def test_a_contract_cancel_answers_success_as_weex_v3_does(server, client):
    server.fill_mode = 'rest'
    client.create_order(SWAP, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-c2'})

    answer = client.cancel_order(None, SWAP, {'clientOrderId': 'cid-c2'})

    assert answer['info']['success'] is True and answer['info']['origClientOrderId'] == 'cid-c2'
    assert (answer['info']['errorCode'], answer['info']['errorMessage']) == ('', '')


@pytest.mark.parametrize('fault, error, cancelled', [
    ('timeout_after_cancel', ccxt.RequestTimeout, True),
    ('5xx_after_cancel', ccxt.ExchangeNotAvailable, True),
    ('timeout_before_cancel', ccxt.RequestTimeout, False),
    ('429', ccxt.RateLimitExceeded, False),
])
def test_cancel_faults_leave_the_order_cancelled_or_not_as_named(server, fault, error, cancelled):
    server.fill_mode = 'rest'
    server.timeout_sleep = 0.5
    client = make_client(server)
    client.timeout = 250
    client.create_order(SPOT, 'limit', 'buy', 0.001, 60000, {'clientOrderId': 'cid-f'})
    server.inject_cancel(fault)

    with pytest.raises(error):
        client.cancel_order(None, SPOT, {'clientOrderId': 'cid-f'})

    assert server.orders_by_client_id['cid-f']['status'] == ('CANCELED' if cancelled else 'NEW')


# --- public market data, for a bot such as Freqtrade (tests/agents/test_freqtrade.py) ---


def test_market_data_serves_the_test_s_candles_up_to_now_and_quotes_at_the_market_price(server):
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    server.candles['BTCUSDT'] = [[now_ms + minutes * 60_000, Decimal('65000'), Decimal('65100'), Decimal('64900'),
                                  Decimal('65050'), Decimal('3')] for minutes in (-2, -1, 0, 1)]
    client = make_client(server)

    candles = client.fetch_ohlcv(SPOT, '1m')
    assert [c[0] for c in candles] == [now_ms - 120_000, now_ms - 60_000, now_ms]  # the future one is not open yet
    assert candles[0][1:] == [65000, 65100, 64900, 65050, 3]
    ticker = client.fetch_ticker(SPOT)
    assert ticker['last'] == ticker['bid'] == ticker['ask'] == 65000
    assert client.fetch_order_book(SPOT)['asks'] == [[65000, 100]]
    assert set(client.fetch_tickers()) == {'BTC/USDT', 'ETH/USDT'}
    assert [r.path for r in server.requests if r.headers.get('ACCESS-SIGN')] == []  # all public


def test_a_test_may_add_spot_markets():
    sol = Market('SOLUSDT', 'SOL', 'USDT', step=Decimal('0.01'), tick=Decimal('0.01'))
    with WeexTestServer(spot_markets={**SPOT_MARKETS, 'SOLUSDT': sol}) as server:
        markets = make_client(server).load_markets()
    assert markets['SOL/USDT']['precision']['amount'] == 0.01
