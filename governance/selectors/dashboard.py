"""Every read the operator dashboard makes. Read-only; templates get plain values.

Amounts stay Decimal (or the exact strings the ledger reports): the dashboard
shows the values the system decided on, never a float approximation of them.
"""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from governance.models import CircuitBreaker, Instrument, Mode, Node, Proposal, Strategy, WorkerHeartbeat
from governance.selectors.controls import (
    quorum_in_force,
    ruleset_current,
    trading_state,
)
from governance.selectors.health import HEARTBEAT_FRESH_SECONDS, health_report
from governance.selectors.forcing import force_summary
from governance.selectors.proposals import proposal_prefetch
from governance.selectors.quorum import quorum_summary
from ledger.models import Fill
from ledger.selectors import portfolio_report

TRACE_LIMIT = 20

# Shown next to realized PnL while exits are disabled, so a 0 is read as intended.
ALPHA_PNL_REASON = (
    "ALPHA mode: exits are disabled, so no position is ever closed and nothing is realized; "
    "open positions are not marked to market, so no unrealized PnL is computed or shown."
)


def venue_status() -> dict:
    """Which venue orders go to and whether they carry real money."""
    venue = settings.CHRONOSX_VENUE
    if venue == "weex" and not settings.WEEX_DEMO:
        return {"venue": venue, "live": True, "label": "LIVE", "detail": "orders are sent to WEEX with real funds"}
    if venue == "weex":
        return {
            "venue": venue,
            "live": False,
            "label": "WEEX DEMO",
            "detail": "orders go to WEEX demo trading: not live, no real funds",
        }
    return {
        "venue": venue,
        "live": False,
        "label": "SANDBOX",
        "detail": "orders are simulated by the sandbox venue: not live, never sent to an exchange",
    }


def _as_time(value: datetime | str | None) -> datetime | None:
    """Health and quorum summaries carry times as ISO text or datetimes; templates want datetimes."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def health_status() -> dict:
    report = health_report()
    return {
        "status": report["status"],
        "database": report["database"],
        "broker": report["broker"],
        "nodes_alive": sum(1 for n in report["nodes"].values() if n["alive"]),
        "nodes_total": len(Node.values),
        "quorum_required": quorum_in_force(),
    }


def nodes_status() -> dict:
    """Each MPC node: alive by health_report's rule, plus what its heartbeat row says."""
    report = health_report()
    beats = {hb.kind: hb for hb in WorkerHeartbeat.objects.filter(kind__in=Node.values)}
    now = timezone.now()
    rows = []
    for node in Node.values:
        state = report["nodes"].get(node, {"alive": False, "last_heartbeat": None})
        last = _as_time(state["last_heartbeat"])
        beat = beats.get(node)
        rows.append(
            {
                "node": node,
                "alive": state["alive"],
                "last_heartbeat": last,
                "age_seconds": int((now - last).total_seconds()) if last else None,
                "key_id": beat.key_id if beat else "",
                "host": beat.host if beat else "",
            }
        )
    return {"nodes": rows, "fresh_seconds": HEARTBEAT_FRESH_SECONDS}


def controls_status() -> dict:
    """The global trading state, what is paused, and every circuit breaker, with who, why and since when."""
    state = trading_state()
    breakers = list(CircuitBreaker.objects.order_by("name"))
    paused = [
        {"kind": kind, "name": str(row), "reason": row.pause_reason, "by": row.paused_by, "at": row.paused_at}
        for kind, model, order in (("strategy", Strategy, "slug"), ("instrument", Instrument, "symbol"))
        for row in model.objects.filter(paused=True).order_by(order)
    ]
    return {
        "trading": state,
        "paused": paused,
        "breakers": breakers,
        "tripped": [b.name for b in breakers if b.tripped],
    }


def ruleset_status() -> dict | None:
    """The published ruleset in force, with the exact parameters the engine is given."""
    ruleset = ruleset_current()
    if ruleset is None:
        return None
    params = ruleset.params or {}
    return {
        "ruleset": ruleset,
        "params": params,
        "assets": sorted((params.get("assets") or {}).items()),
        "strategy_budgets": sorted((params.get("strategy_budgets") or {}).items()),
    }


def _trace(proposal: Proposal, *, expanded: bool) -> dict:
    decision = getattr(proposal, "decision", None)
    quorum = quorum_summary(proposal=proposal)
    if quorum:
        quorum = {**quorum, "votes": [{**v, "cast_at": _as_time(v.get("cast_at"))} for v in quorum["votes"]]}
    orders = []
    for order in proposal.orders.all():
        fills = list(order.fills.all())
        orders.append({"order": order, "fills": fills})
    checks = decision.checks if decision else []
    return {
        "proposal": proposal,
        "expanded": expanded,
        "decision": decision,
        "checks": checks,
        "failed_checks": [c for c in checks if not c.get("passed")],
        "quorum": quorum,
        "force": force_summary(proposal=proposal)["force"],
        "orders": orders,
        "fill_count": sum(len(o["fills"]) for o in orders),
        "filled_quantity": sum((o["order"].filled_quantity for o in orders), Decimal(0)),
        # A proposal with any sandbox order is sandbox data and is labelled as such.
        "sandbox": any(not o["order"].live for o in orders),
    }


def proposals_trace(*, selected: str = "", limit: int = TRACE_LIMIT) -> list[dict]:
    """The latest proposals, newest first, each with decision, quorum, orders and fills.

    `selected` is the id of the row the operator expanded (compared as text, so a
    malformed value simply matches nothing).
    """
    qs = proposal_prefetch(Proposal.objects.order_by("-received_at")).select_related("agent")
    return [_trace(p, expanded=str(p.id) == selected) for p in qs[:limit]]


def portfolio_status() -> dict:
    """Realized-only metrics (ledger's portfolio_report), plus how much of it is sandbox data."""
    ruleset = ruleset_current()
    report = portfolio_report(strategies=None, mode=ruleset.mode if ruleset else Mode.ALPHA)
    fees: dict[tuple[bool, str], Decimal] = {}
    counts = {True: 0, False: 0}
    for live, fee_asset, fee in Fill.objects.values_list("live", "fee_asset", "fee"):
        counts[live] += 1
        fees[(live, fee_asset)] = fees.get((live, fee_asset), Decimal(0)) + fee
    return {
        "report": report,
        "alpha": report["mode"] == Mode.ALPHA,
        "alpha_reason": ALPHA_PNL_REASON,
        "by_asset": sorted(report["exposure"]["by_asset"].items()),
        "by_strategy": sorted(report["exposure"]["by_strategy"].items()),
        "pnl_by_strategy": sorted((report.get("realized_pnl_by_strategy") or {}).items()),
        "live_fills": counts[True],
        "sandbox_fills": counts[False],
        "fees": [
            {"live": live, "fee_asset": asset, "fee": amount}
            for (live, asset), amount in sorted(fees.items(), key=lambda kv: (not kv[0][0], kv[0][1]))
        ],
    }

