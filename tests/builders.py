"""Test data builders, shared by every test module (fixtures stay in the conftest files).

Plain functions and one small class: each builds exactly what a test asks for, through
the same services production uses wherever the point is the pipeline, and straight into
the tables where the point is a later stage.
"""

import itertools
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from chronosx import workers
from exchange.models import Order
from exchange.services.breakers import venue_probe
from governance.models import Agent, Decision, Instrument, Proposal, Ruleset, Strategy
from governance.services.agents import agent_create
from governance.services.controls import trading_enable
from governance.services.staff import staff_add
from ledger.models import AuditEvent, Position
from ledger.services import audit_chain_extend, fill_record

# The checks of every decision, in the order CONTRACT.md §1 lists them, and those a smaller
# quantity can satisfy (the only ones `modify` may answer).
CONTRACT_ORDER = (
    "trading_enabled",
    "circuit_breaker",
    "exits_enabled",
    "instrument_enabled",
    "min_confidence",
    "signal_age",
    "slippage",
    "price_collar",
    "max_order_notional",
    "max_position",
    "asset_exposure",
    "strategy_budget",
    "portfolio_exposure",
    "max_open_positions",
    "order_rate",
    "daily_loss",
    "drawdown",
    "loss_cooldown",
)
# A ruleset published before the loss limits (and every decision made under one, as the
# golden file records them) decides with the first fifteen.
CONTRACT_ORDER_BEFORE_LOSS_LIMITS = CONTRACT_ORDER[:15]
CONTRACT_QUANTITY_BOUND = ("max_order_notional", "max_position", "asset_exposure", "strategy_budget", "portfolio_exposure")

# --- the demo installation ------------------------------------------------------------


def seed(*, trading: bool = False) -> None:
    """seed_demo, plus what a running router would have recorded: a healthy venue probe; and
    the audit sequencer's round, so the seeded events are chained as a second later."""
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    venue_probe()
    if trading:
        trading_enable(actor="test", reason="tests")
    audit_chain_extend()


def beat_all() -> None:
    """One heartbeat of every kind of worker, as the embedded process beats (the router's probes the venue)."""
    workers.beat_once(workers.registered_kinds())


# --- staff -----------------------------------------------------------------------------


def staff_member(role, name=None, *, password=None):
    """A staff user holding `role` (governance.roles.ROLES), made as `manage.py staff add`
    makes one (audited); called `role` unless named. No usable password unless given."""
    return staff_add(name=name or role, role=role, password=password, actor="test")


# --- agents and the API ---------------------------------------------------------------


def make_agent(strategies=("demo",)):
    return agent_create(name=f"agent-{uuid.uuid4().hex[:8]}", strategy_slugs=list(strategies), actor="test")


def client_for(token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def proposal_body(**overrides):
    """A sound BTCUSDT buy that passes every check of the demo ruleset."""
    body = {
        "strategy": "demo",
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": "0.0010",
        "order_type": "limit",
        "limit_price": "65000",
        "reference_price": "65000",
        "expected_slippage_bps": 1,
        "confidence": 0.95,
        "signal_time": datetime.now(dt_timezone.utc).isoformat(),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def post_proposal(client, body=None, key=None, **headers):
    return client.post(
        "/api/v1/proposals/",
        data=body if body is not None else proposal_body(),
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex,
        **headers,
    )


# Statuses a proposal the rules let through may be in, depending on how far the
# quorum and routing stages have got by the time the response is written.
NOT_BLOCKED = {"pending", "approved", "routed", "partially_filled", "filled"}


def counts():
    return {
        "proposals": Proposal.objects.count(),
        "decisions": Decision.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


@contextmanager
def nothing_stored():
    """Asserts that the block stores no proposal, decision or audit event."""
    before = counts()
    yield
    assert counts() == before


def assert_error(response, status, code, fields=()):
    """The CONTRACT error envelope: {"error": {"code", "message", "fields"?}}, with `fields` naming each field."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if fields:
        assert set(fields) <= set(error["fields"]), error
    if "fields" in error:
        assert error["fields"], "fields, when present, names at least one field"
        for messages in error["fields"].values():
            assert messages and all(isinstance(m, str) and m for m in messages)
    return error


# --- later stages, built directly -----------------------------------------------------


def approved_proposal(
    *,
    agent,
    symbol="BTCUSDT",
    side="buy",
    quantity="0.0010",
    approved_quantity=None,
    order_type="limit",
    limit_price="65000",
    reference_price="65000",
    slippage="1",
    intent="open",
) -> Proposal:
    """An `approved` proposal with its decision, as the quorum stage leaves it (no votes:
    tests that use it stand in for the certificate check)."""
    now = datetime.now(dt_timezone.utc)
    ruleset = Ruleset.objects.filter(status=Ruleset.Status.PUBLISHED).first()
    proposal = Proposal.objects.create(
        agent=agent,
        strategy=agent.strategies.get(slug="demo"),
        instrument=Instrument.objects.get(symbol=symbol),
        side=side,
        quantity=Decimal(quantity),
        order_type=order_type,
        limit_price=None if order_type == "market" else Decimal(limit_price),
        reference_price=Decimal(reference_price),
        expected_slippage_bps=Decimal(slippage),
        confidence=Decimal("0.9"),
        signal_time=now,
        intent=intent,
        received_at=now,
        status=Proposal.Status.APPROVED,
        status_changed_at=now,
        idempotency_key=uuid.uuid4().hex,
        request_hash="0" * 64,
    )
    Decision.objects.create(
        proposal=proposal,
        outcome="approve" if approved_quantity is None else "modify",
        approved_quantity=Decimal(approved_quantity or quantity),
        ruleset=ruleset,
        ruleset_version=ruleset.version,
        decided_at=now,
        checks=[],
        inputs={},
        digest="0" * 64,
    )
    return proposal


def order_with_fill(*, proposal, live: bool, trade_id: str, fee="0.0325", venue=None):
    """An order for `proposal` filled once at its limit price, written as the execution layer writes it."""
    venue = venue or ("weex" if live else "sandbox")
    order = Order.objects.create(
        proposal=proposal,
        client_order_id=f"cx-{uuid.uuid4().hex[:20]}",
        venue=venue,
        live=live,
        symbol=proposal.instrument.symbol,
        side=proposal.side,
        order_type=proposal.order_type,
        quantity=proposal.quantity,
        limit_price=proposal.limit_price,
        status=Order.Status.FILLED,
        filled_quantity=proposal.quantity,
        average_price=proposal.limit_price,
    )
    fill_record(
        order=order,
        trade_id=trade_id,
        price=proposal.limit_price,
        quantity=proposal.quantity,
        fee=Decimal(fee),
        fee_asset="USDT",
        filled_at=timezone.now(),
    )
    return order


# --- the ledger, straight from fills ---------------------------------------------------

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=dt_timezone.utc)
_trade_ids = itertools.count(1)


def D(text) -> Decimal:
    return Decimal(text)


class Book:
    """Proposals, orders and fills of one strategy, straight into the ledger."""

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
        p = Position.objects.get(strategy=self.strategy, instrument=self.instrument)
        return p.quantity, p.entry_notional


# --- the exchange -----------------------------------------------------------------------

# Distinctive, so a grep for them cannot match anything else.
API_KEY = "tk-3b9e61f0c2d7"
SECRET = "ts-SECRET-8f4a2c6e1d9b"
PASSPHRASE = "tp-PASS-5c0d7e3a9f"


def weex_settings(settings, server, *, market="spot", timeout_ms=250):
    settings.CHRONOSX_VENUE = "weex"
    settings.WEEX_API_KEY = server.api_key
    settings.WEEX_API_SECRET = server.secret
    settings.WEEX_API_PASSPHRASE = server.passphrase
    settings.WEEX_BASE_URL = server.url
    settings.WEEX_DEMO = False
    settings.CHRONOSX_WEEX_MARKET = market
    settings.CHRONOSX_VENUE_TIMEOUT_MS = timeout_ms
    settings.CHRONOSX_VENUE_RATE_LIMIT = False


def posts(server, path=None):
    return [r for r in server.requests if r.method == "POST" and (path is None or r.path == path)]


def posts_for(server, client_order_id):
    return [r for r in posts(server) if (r.json() or {}).get("newClientOrderId") == client_order_id]
