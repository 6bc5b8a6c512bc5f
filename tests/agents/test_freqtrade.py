"""Freqtrade, a trading bot nobody here wrote, in dry-run mode behind ChronosX.

The bot runs as its own process (`freqtrade trade --dry-run`, from the virtualenv that
scripts/freqtrade-venv makes) with a strategy that mixes in chronosx_freqtrade.ChronosXGate.
Its exchange is ccxt's `weex` class pointed at the WEEX-protocol test server, which serves
markets, candles this test makes, tickers and depth; nothing is downloaded. weex because the
repo already fakes that protocol, and Freqtrade runs it with its generic Exchange class: no
exchange-specific startup calls, no websockets, and market data in four unsigned GETs. ChronosX is the real
server (pytest-django's live server) with its sandbox venue, with rules that approve the BTC entry,
cut the ETH entry and block the SOL entry. The test reads the bot's own dry-run trade database.
"""

import json
import os
import signal
import sqlite3
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from governance.models import Instrument, Proposal, Ruleset
from governance.services.controls import pause_set, trading_enable
from governance.services.rulesets import ruleset_edit, ruleset_new_draft, ruleset_publish
from tests.builders import make_agent, seed
from tests.ci_services import service_missing
from tests.weex_server import SPOT_MARKETS, Market, WeexTestServer

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("FREQTRADE_VENV", ROOT / "var" / "freqtrade-venv"))
FREQTRADE = VENV / "bin" / "freqtrade"

pytestmark = pytest.mark.integration  # an outside bot process, the WEEX test server and a live server

PRICES = {"BTCUSDT": Decimal("65000"), "ETHUSDT": Decimal("3500"), "SOLUSDT": Decimal("150")}
# Stakes the strategy asks for (USDT): 0.001 BTC passes every check; 0.2 ETH is over the ETH
# position limit this test sets (0.05); SOL is paused, so any SOL entry is blocked.
STAKES = {"BTC/USDT": 65, "ETH/USDT": 700, "SOL/USDT": 15}
ETH_POSITION_LIMIT = Decimal("0.05")
RUN_SECONDS = 120

STRATEGY = f'''
from freqtrade.strategy import IStrategy

from chronosx_freqtrade import ChronosXGate

STAKES = {STAKES!r}


class AlwaysEnter(IStrategy):
    """Enters every pair on every candle and never exits: what ChronosX lets through is what opens."""

    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {{"0": 100}}
    stoploss = -0.99
    startup_candle_count = 0

    def populate_indicators(self, dataframe, metadata):
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe["enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe["exit_long"] = 0
        return dataframe

    def custom_stake_amount(self, pair, current_time, current_rate, proposed_stake, min_stake, max_stake,
                            leverage, entry_tag, side, **kwargs):
        return STAKES[pair]


class GovernedAlwaysEnter(ChronosXGate, AlwaysEnter):
    pass
'''


def candles(price: Decimal, now_ms: int) -> list:
    """Five hours of one-minute candles up to ten minutes ahead (served once open): a small
    wave around `price`, made here."""
    start = now_ms // 60_000 * 60_000 - 300 * 60_000
    rows = []
    for i in range(311):
        close = price * (1 + Decimal((i % 7) - 3) / 10_000)
        rows.append([start + i * 60_000, price, max(price, close) * Decimal("1.0005"),
                     min(price, close) * Decimal("0.9995"), close, Decimal("10")])
    return rows


def bot_config(*, weex_url: str, chronosx_url: str, token: str) -> dict:
    urls = {key: weex_url for key in ("public", "private", "contract", "contractPrivate")}
    return {
        "max_open_trades": 10,
        "stake_currency": "USDT",
        "stake_amount": 100,
        "tradable_balance_ratio": 0.99,
        "dry_run": True,
        "dry_run_wallet": 10_000,
        "cancel_open_orders_on_exit": False,
        "trading_mode": "spot",
        "timeframe": "1m",
        "unfilledtimeout": {"entry": 10, "exit": 10, "unit": "minutes"},
        "entry_pricing": {"price_side": "same", "use_order_book": False, "price_last_balance": 0.0,
                          "check_depth_of_market": {"enabled": False, "bids_to_ask_delta": 1}},
        "exit_pricing": {"price_side": "same", "use_order_book": False},
        "order_types": {"entry": "limit", "exit": "limit", "stoploss": "market", "stoploss_on_exchange": False},
        "exchange": {
            "name": "weex", "key": "", "secret": "", "password": "",
            # The rate limiter would sleep 2 s per exchangeInfo; the test server needs no pacing.
            "ccxt_config": {"enableRateLimit": False, "urls": {"api": urls}},
            "ccxt_async_config": {"enableRateLimit": False, "urls": {"api": urls}},
            "pair_whitelist": list(STAKES), "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "bot_name": "chronosx-freqtrade-test",
        "initial_state": "running",
        "internals": {"process_throttle_secs": 2, "heartbeat_interval": 0},
        "chronosx": {"url": chronosx_url, "token": token, "strategy": "demo", "confidence": 0.95, "wait_seconds": 20},
    }


@pytest.fixture
def chronosx(live_server, transactional_db):
    """ChronosX with trading on: BTC as seeded, ETH positions capped at 0.05, SOL paused."""
    seed()
    sol = Instrument.objects.create(symbol="SOLUSDT", base_asset="SOL", min_quantity="0.01", quantity_step="0.01")
    pause_set(target=sol, paused=True, actor="test", reason="not traded by this desk")
    draft = ruleset_new_draft(source=Ruleset.objects.get(status="published"), actor="test")
    # SOL gets limits as wide as BTC's, so that the pause is the only reason it is blocked.
    ruleset_edit(ruleset_id=draft.id, actor="test", user="test", changes={
        "assets.ETHUSDT.max_position_quantity": str(ETH_POSITION_LIMIT),
        "assets.SOLUSDT.max_position_quantity": "1000", "assets.SOLUSDT.max_exposure": "1000000",
    })
    ruleset_publish(ruleset=Ruleset.objects.get(id=draft.id), actor="test")
    trading_enable(actor="test", reason="freqtrade dry-run test")
    _, token = make_agent(("demo",))
    return live_server.url, token


@pytest.fixture
def exchange():
    markets = {**SPOT_MARKETS, "SOLUSDT": Market("SOLUSDT", "SOL", "USDT", step=Decimal("0.01"), tick=Decimal("0.01"))}
    with WeexTestServer(spot_markets=markets) as server:
        now_ms = int(time.time() * 1000)
        server.market_price.update(PRICES)
        server.candles = {symbol: candles(price, now_ms) for symbol, price in PRICES.items()}
        yield server


def trades(db_path: Path) -> list[dict]:
    if not db_path.exists():
        return []
    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in db.execute("SELECT pair, amount, is_open FROM trades")]
        except sqlite3.OperationalError:  # the bot has not created its tables yet
            return []


@pytest.fixture
def freqtrade() -> Path:
    """The bot's command line; first among the test's fixtures, so a missing one costs no setup."""
    if not FREQTRADE.exists():
        service_missing(f"the Freqtrade venv is missing ({FREQTRADE}): run scripts/freqtrade-venv")
    return FREQTRADE


def test_freqtrade_opens_what_chronosx_approves_cut_to_size_and_never_what_it_blocks(
        freqtrade, chronosx, exchange, tmp_path):
    url, token = chronosx
    user_data = tmp_path / "user_data"
    (user_data / "strategies").mkdir(parents=True)
    (user_data / "strategies" / "governed.py").write_text(STRATEGY)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(bot_config(weex_url=exchange.url, chronosx_url=url, token=token)))
    db_path = tmp_path / "trades.dryrun.sqlite"
    log_path = tmp_path / "freqtrade.log"
    env = {"PATH": f"{VENV / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    output = open(tmp_path / "freqtrade.out", "w")
    bot = subprocess.Popen(
        [str(freqtrade), "trade", "--dry-run", "--config", str(config), "--userdir", str(user_data),
         "--strategy", "GovernedAlwaysEnter", "--db-url", f"sqlite:///{db_path}", "--logfile", str(log_path)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Until BTC and ETH are open and SOL has been refused at least twice (the bot retries
        # every loop), or the bot dies, or time runs out.
        deadline = time.monotonic() + RUN_SECONDS
        while time.monotonic() < deadline and bot.poll() is None:
            pairs = {trade["pair"] for trade in trades(db_path)}
            sol_blocked = Proposal.objects.filter(instrument__symbol="SOLUSDT", status="blocked").count()
            if {"BTC/USDT", "ETH/USDT"} <= pairs and sol_blocked >= 2:
                break
            time.sleep(1)
    finally:
        stop(bot)
        output.close()
    logs = (tmp_path / "freqtrade.out").read_text()[-3000:] + (log_path.read_text()[-6000:] if log_path.exists() else "")

    opened = {trade["pair"]: trade for trade in trades(db_path)}
    proposals = {symbol: list(Proposal.objects.filter(instrument__symbol=symbol).select_related("decision"))
                 for symbol in PRICES}
    # Blocked: asked, refused every time, never opened.
    assert "SOL/USDT" not in opened, logs
    assert len(proposals["SOLUSDT"]) >= 2, logs
    for proposal in proposals["SOLUSDT"]:
        assert proposal.status == "blocked" and proposal.decision.outcome == "block"
        assert [c["rule"] for c in proposal.decision.checks if not c["passed"]] == ["instrument_enabled"]
    # Approved: opened with the amount asked for.
    assert "BTC/USDT" in opened, logs
    [btc] = proposals["BTCUSDT"]
    assert btc.decision.outcome == "approve" and Decimal(str(opened["BTC/USDT"]["amount"])) == Decimal("0.001")
    # Modified: opened with ChronosX's cut amount, not the 0.2 ETH the strategy asked for.
    assert "ETH/USDT" in opened, logs
    [eth] = proposals["ETHUSDT"]
    assert eth.quantity == Decimal("0.2") and eth.decision.outcome == "modify"
    assert eth.decision.approved_quantity == ETH_POSITION_LIMIT
    assert Decimal(str(opened["ETH/USDT"]["amount"])) == ETH_POSITION_LIMIT
    # Dry run: the bot never sent an order to the exchange (ChronosX's sandbox filled its own).
    assert [r.path for r in exchange.requests if r.method != "GET"] == []


def stop(process: subprocess.Popen) -> None:
    """Stop the bot (SIGINT: Freqtrade's clean shutdown), then kill whatever of its process
    group is left."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)
