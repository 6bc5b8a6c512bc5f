"""ccxt-shaped order entry: a bot written against ccxt changes one line,

    exchange = ccxt.weex({...})          ->    exchange = GovernedExchange(client, strategy="demo")

and each `create_order` becomes a governed proposal. It returns ccxt's unified order structure
(the proposal id is the order id) and raises ccxt's InvalidOrder (when ccxt is installed;
chronosx_client.errors.Blocked otherwise, with the failed checks) when governance blocks it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from chronosx_client.client import Client
from chronosx_client.errors import Blocked

try:  # the bot's own ccxt, if it has one: its `except ccxt.InvalidOrder` then catches a block
    from ccxt.base.errors import InvalidOrder as _CcxtInvalidOrder
except ImportError:  # pragma: no cover - ccxt is optional
    _CcxtInvalidOrder = None

if _CcxtInvalidOrder is not None:
    class InvalidOrder(Blocked, _CcxtInvalidOrder):
        """Blocked by governance, catchable as ccxt.InvalidOrder."""
else:
    InvalidOrder = Blocked

# ChronosX proposal status -> ccxt unified order status
STATUS = {
    "pending": "open", "approved": "open", "routed": "open", "partially_filled": "open",
    "filled": "closed", "cancelled": "canceled", "expired": "expired", "rejected": "rejected", "blocked": "rejected",
}


class GovernedExchange:
    def __init__(self, client: Client, *, strategy: str, confidence: float = 1.0, wait: int = 30):
        self.client, self.strategy, self.confidence, self.wait = client, strategy, confidence, wait

    def create_order(self, symbol: str, type: str, side: str, amount, price=None, params: dict | None = None) -> dict:
        """params: `reference_price` (required for a market order), `confidence`,
        `expected_slippage_bps`, `reduceOnly` (a close), `signal_time`, `clientOrderId` (the idempotency key)."""
        params = dict(params or {})
        reference = params.pop("reference_price", price)
        if reference is None:
            raise ValueError("a market order needs params['reference_price']: the price the bot saw")
        proposal = self.client.propose(
            strategy=self.strategy,
            symbol=symbol.split(":")[0].replace("/", ""),
            side=side,
            quantity=_text(amount),
            order_type=type,
            limit_price=_text(price) if type == "limit" else None,
            reference_price=_text(reference),
            confidence=params.pop("confidence", self.confidence),
            expected_slippage_bps=params.pop("expected_slippage_bps", 0),
            signal_time=params.pop("signal_time", datetime.now(timezone.utc).isoformat()),
            intent="close" if params.pop("reduceOnly", False) else "open",
            idempotency_key=params.pop("clientOrderId", None),
            wait=self.wait,
            until_approved=True,
        )
        if (proposal.get("decision") or {}).get("outcome") == "block" or proposal["status"] == "blocked":
            failed = [c for c in proposal["decision"]["checks"] if not c["passed"]]
            raise InvalidOrder("; ".join(f"{c['rule']}: {c['detail']}" for c in failed), proposal=proposal)
        return unified_order(proposal, symbol=symbol)


def unified_order(proposal: dict, *, symbol: str) -> dict[str, Any]:
    decision = proposal.get("decision") or {}
    amount = Decimal(decision.get("approved_quantity") or proposal["quantity"])
    filled = sum((Decimal(o["filled_quantity"]) for o in proposal.get("orders", [])), Decimal(0))
    average = next((o["average_price"] for o in proposal.get("orders", []) if o.get("average_price")), None)
    received = datetime.fromisoformat(proposal["received_at"].replace("Z", "+00:00"))
    return {
        "id": proposal["id"],
        "clientOrderId": next((o["client_order_id"] for o in proposal.get("orders", [])), None),
        "timestamp": int(received.timestamp() * 1000),
        "datetime": proposal["received_at"],
        "symbol": symbol,
        "type": proposal["order_type"],
        "side": proposal["side"],
        "price": float(proposal["limit_price"]) if proposal.get("limit_price") else None,
        "amount": float(amount),
        "filled": float(filled),
        "remaining": float(amount - filled),
        "average": float(average) if average else None,
        "status": STATUS.get(proposal["status"], "open"),
        "reduceOnly": proposal.get("intent") == "close",
        "fee": None,
        "trades": [],
        "info": proposal,
    }


def _text(value) -> str:
    """A ccxt amount or price (float, int, str or Decimal) as the decimal string ChronosX reads."""
    text = format(Decimal(str(value)), "f")
    return text
