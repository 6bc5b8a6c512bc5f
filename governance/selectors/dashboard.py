"""Every read the operator dashboard makes. Read-only; templates get plain values.

Amounts stay Decimal (or the exact strings the ledger reports): the dashboard
shows the values the system decided on, never a float approximation of them.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import ROUND_HALF_EVEN, Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from chronosx.canonical import decimal_text
from governance import engine
from governance.models import CircuitBreaker, Decision, Instrument, Mode, Node, Proposal, Strategy, WorkerHeartbeat
from governance.selectors.controls import (
    quorum_in_force,
    ruleset_current,
    trading_state,
)
from governance.selectors.context import allocation_trailing_pnl, reserved_rows
from governance.selectors.health import HEARTBEAT_FRESH_SECONDS, health_report
from governance.selectors.forcing import force_summary
from governance.selectors.proposals import proposal_prefetch
from governance.selectors.quorum import quorum_summary
from ledger.models import Fill, Position, RealizedPnl
from ledger.selectors import portfolio_report, realized_risk_by_strategy

TRACE_LIMIT = 20

# Shown next to realized PnL while exits are disabled, so a 0 is read as intended.
ALPHA_PNL_REASON = (
    "ALPHA mode: exits are disabled, so no position is ever closed and nothing is realized; "
    "open positions are not marked to market, so no unrealized PnL is computed or shown."
)


def weex_host(url: str | None) -> str | None:
    """The host of WEEX_BASE_URL when it is set and is not one of WEEX's own hosts."""
    if not url:
        return None
    host = (urlsplit(url if "//" in url else f"//{url}").hostname or url).lower()
    return None if host == "weex.com" or host.endswith(".weex.com") else host


def venue_status() -> dict:
    """Which venue orders go to and whether they carry real money, exactly as configured:
    "sandbox", "WEEX demo", "WEEX live", or "WEEX (custom endpoint: HOST)" when WEEX_BASE_URL
    points the client somewhere other than WEEX."""
    venue = settings.CHRONOSX_VENUE
    if venue not in ("weex", "sandbox"):
        return {  # another ccxt exchange (exchange/README.md)
            "venue": venue,
            "live": True,
            "live_text": "YES",
            "label": f"{venue.upper()} LIVE",
            "detail": f"orders are sent to {venue} through ccxt, with real funds",
        }
    if venue != "weex":
        return {
            "venue": venue,
            "live": False,
            "live_text": "NO",
            "label": "SANDBOX",
            "detail": "orders are simulated by the sandbox venue: not live, never sent to an exchange",
        }
    custom = weex_host(getattr(settings, "WEEX_BASE_URL", None))
    if custom:
        demo = " in demo mode" if settings.WEEX_DEMO else ""
        return {
            "venue": venue,
            "live": False,
            "live_text": "NOT TO WEEX",
            "label": f"WEEX (custom endpoint: {custom})",
            "custom_endpoint": custom,
            "detail": (
                f"WEEX_BASE_URL sends every order to {custom}{demo}, not to a WEEX host: no WEEX funds move "
                f"unless that host passes orders on to WEEX. The execution layer still books its fills as live."
            ),
        }
    if settings.WEEX_DEMO:
        return {
            "venue": venue,
            "live": False,
            "live_text": "NO",
            "label": "WEEX DEMO",
            "detail": "orders go to WEEX demo trading: not live, no real funds",
        }
    return {
        "venue": venue,
        "live": True,
        "live_text": "YES",
        "label": "WEEX LIVE",
        "detail": "orders are sent to WEEX with real funds",
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
        # Votes received of the nodes that vote: "3 approvals, 2 required" must not read "3 of 2".
        "votes_received": len(quorum["votes"]) if quorum else 0,
        "nodes_total": len(Node.values),
        "orders": orders,
        "fill_count": sum(len(o["fills"]) for o in orders),
        "filled_quantity": sum((o["order"].filled_quantity for o in orders), Decimal(0)),
        # A proposal with any sandbox order is sandbox data and is labelled as such.
        "sandbox": any(not o["order"].live for o in orders),
    }


@dataclass(frozen=True)
class TraceFilter:
    """What the operator narrowed the trace to; every field optional, none trusted as SQL."""

    q: str = ""  # a proposal id (or its start), or part of an agent's name
    strategy: str = ""
    symbol: str = ""
    status: str = ""
    outcome: str = ""  # approve | modify | block | undecided
    since: date | None = None  # received on or after this UTC day
    until: date | None = None  # received on or before this UTC day

    @property
    def active(self) -> bool:
        return any((self.q, self.strategy, self.symbol, self.status, self.outcome, self.since, self.until))


def _trace_queryset(f: TraceFilter):
    qs = Proposal.objects.all()
    if f.q:
        qs = qs.filter(Q(id__istartswith=f.q) | Q(agent__name__icontains=f.q) | Q(idempotency_key=f.q))
    if f.strategy:
        qs = qs.filter(strategy__slug=f.strategy)
    if f.symbol:
        qs = qs.filter(instrument__symbol=f.symbol)
    if f.status:
        qs = qs.filter(status=f.status)
    if f.outcome == "undecided":
        qs = qs.filter(decision__isnull=True)
    elif f.outcome:
        qs = qs.filter(decision__outcome=f.outcome)
    if f.since:
        qs = qs.filter(received_at__gte=datetime.combine(f.since, time.min, tzinfo=dt_timezone.utc))
    if f.until:
        qs = qs.filter(received_at__lt=datetime.combine(f.until + timedelta(days=1), time.min, tzinfo=dt_timezone.utc))
    return qs


def proposals_trace(*, selected: str = "", limit: int = TRACE_LIMIT, filters: TraceFilter | None = None, page: int = 1) -> dict:
    """A page of proposals matching `filters`, newest first, each with decision, quorum,
    orders and fills; with the page number (clamped to the pages there are) and the counts.

    `selected` is the id of the row the operator expanded (compared as text, so a
    malformed value simply matches nothing).
    """
    qs = _trace_queryset(filters or TraceFilter())
    total = qs.count()
    pages = max((total + limit - 1) // limit, 1)
    page = min(max(page, 1), pages)
    qs = proposal_prefetch(qs.order_by("-received_at", "-id")).select_related("agent")
    start = (page - 1) * limit
    return {
        "rows": [_trace(p, expanded=str(p.id) == selected) for p in qs[start : start + limit]],
        "total": total,
        "page": page,
        "pages": pages,
        "first": start + 1 if total else 0,
        "last": min(start + limit, total),
    }


def trace_choices() -> dict:
    """The values the trace's filter offers."""
    return {
        "strategies": list(Strategy.objects.order_by("slug").values_list("slug", flat=True)),
        "symbols": list(Instrument.objects.order_by("symbol").values_list("symbol", flat=True)),
        "statuses": list(Proposal.Status.values),
        "outcomes": [*Decision.Outcome.values, "undecided"],
    }


def price_text(value: str | Decimal | None, tick: Decimal | None) -> str | None:
    """A price to the instrument's precision (its price tick's decimals), half to even."""
    if value is None or value == "":
        return None
    amount = Decimal(value)
    if tick is None or tick <= 0:
        return decimal_text(amount.normalize())
    return decimal_text(amount.quantize(Decimal(1).scaleb(tick.normalize().as_tuple().exponent), rounding=ROUND_HALF_EVEN))


def positions_status(report_positions: list[dict]) -> list[dict]:
    """Each position as the rules see it, in their words: "open position" counts the approved
    orders still working, "open quantity" is what a close may still take (the filled position
    less closes in flight). Average entry price to the instrument's precision."""
    instruments = {i.id: i for i in Instrument.objects.all()}
    by_symbol = {i.symbol: i for i in instruments.values()}
    slugs = dict(Strategy.objects.values_list("id", "slug"))
    rows = {}
    for p in report_positions:
        rows[(p["strategy"], p["symbol"])] = {
            "strategy": p["strategy"],
            "symbol": p["symbol"],
            "filled": Decimal(p["quantity"]),
            "working": Decimal(0),
            "closing": Decimal(0),
            "average_entry_price": p["average_entry_price"],
        }
    for strategy_id, instrument_id, signed, _notional, intent in reserved_rows():
        instrument = instruments.get(instrument_id)
        key = (slugs.get(strategy_id, str(strategy_id)), instrument.symbol if instrument else str(instrument_id))
        row = rows.setdefault(
            key,
            {"strategy": key[0], "symbol": key[1], "filled": Decimal(0), "working": Decimal(0), "closing": Decimal(0),
             "average_entry_price": None},
        )
        if intent == Proposal.Intent.CLOSE:
            row["closing"] += abs(signed)
        else:
            row["working"] += signed
    out = []
    for key in sorted(rows):
        row = rows[key]
        instrument = by_symbol.get(row["symbol"])
        out.append(
            {
                **row,
                "open_position": row["filled"] + row["working"],
                "open_quantity": max(abs(row["filled"]) - row["closing"], Decimal(0)),
                "average_entry_price": price_text(row["average_entry_price"], instrument.price_tick if instrument else None),
                "average_entry_price_exact": row["average_entry_price"],
            }
        )
    return out


def realized_pnl_note(*, alpha: bool, realized_pnl: str) -> dict:
    """What to say next to realized PnL. "0 by design" only in ALPHA and only while nothing
    was ever realized; a figure realized while FULL was in force stays, with when and under
    which ruleset version it was realized."""
    closes = RealizedPnl.objects.count()
    if not closes:
        return {"why_zero": alpha}
    last = (
        RealizedPnl.objects.order_by("-fill__filled_at", "-id")
        .values("fill__filled_at", "fill__order__proposal__decision__ruleset_version")
        .first()
    )
    first_at = RealizedPnl.objects.order_by("fill__filled_at", "id").values_list("fill__filled_at", flat=True).first()
    return {
        "why_zero": False,
        "closes": closes,
        "first_at": first_at,
        "last_at": last["fill__filled_at"],
        "last_version": last["fill__order__proposal__decision__ruleset_version"],
        "alpha_now": alpha,
        "amount": realized_pnl,
    }


def portfolio_status() -> dict:
    """Realized-only metrics (ledger's portfolio_report), plus how much of it is sandbox data."""
    ruleset = ruleset_current()
    report = portfolio_report(strategies=None, mode=ruleset.mode if ruleset else Mode.ALPHA)
    fees: dict[tuple[bool, str], Decimal] = {}
    counts = {True: 0, False: 0}
    for live, fee_asset, fee in Fill.objects.values_list("live", "fee_asset", "fee"):
        counts[live] += 1
        fees[(live, fee_asset)] = fees.get((live, fee_asset), Decimal(0)) + fee
    alpha = report["mode"] == Mode.ALPHA
    return {
        "report": report,
        "alpha": alpha,
        "alpha_reason": ALPHA_PNL_REASON,
        "pnl_note": realized_pnl_note(alpha=alpha, realized_pnl=report["realized_pnl"]),
        "positions": positions_status(report["positions"]),
        "utilisation": utilisation_status(ruleset=ruleset),
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


def _cap(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (ArithmeticError, ValueError, TypeError):
        return None


def _bar(name: str, filled: Decimal, reserved: Decimal, cap: Decimal | None) -> dict:
    used = filled + reserved
    percent = None if not cap else (used / cap * 100)
    return {
        "name": name,
        "filled": decimal_text(filled),
        "reserved": decimal_text(reserved),
        "used": decimal_text(used),
        "cap": decimal_text(cap) if cap is not None else None,
        "percent": None if percent is None else f"{percent.quantize(Decimal('0.1'))}",
        "filled_width": 0 if not cap else min(float(filled / cap * 100), 100.0),
        "reserved_width": 0 if not cap else max(min(float(used / cap * 100), 100.0) - min(float(filled / cap * 100), 100.0), 0.0),
        "over": bool(cap is not None and used > cap),
    }


@dataclass(frozen=True)
class ExposureSplit:
    """Exposure as the engine counts it, by asset symbol, by strategy slug and gross: `filled` is
    notional at entry price of the positions, `reserved` what approved orders still working hold."""

    filled_asset: dict
    filled_strategy: dict
    filled_gross: Decimal
    reserved_asset: dict
    reserved_strategy: dict
    reserved_gross: Decimal


def exposure_split() -> ExposureSplit:
    """The positions and the working approved orders, summed once for every bar that shows them."""
    filled_asset, filled_strategy, filled_gross = defaultdict(Decimal), defaultdict(Decimal), Decimal(0)
    for position in Position.objects.select_related("strategy", "instrument"):
        filled_asset[position.instrument.symbol] += position.entry_notional
        filled_strategy[position.strategy.slug] += position.entry_notional
        filled_gross += position.entry_notional
    symbols = dict(Instrument.objects.values_list("id", "symbol"))
    slugs = dict(Strategy.objects.values_list("id", "slug"))
    reserved_asset, reserved_strategy, reserved_gross = defaultdict(Decimal), defaultdict(Decimal), Decimal(0)
    for strategy_id, instrument_id, _signed, notional, intent in reserved_rows():
        if intent == Proposal.Intent.CLOSE:
            continue  # a close releases exposure
        reserved_asset[symbols.get(instrument_id, str(instrument_id))] += notional
        reserved_strategy[slugs.get(strategy_id, str(strategy_id))] += notional
        reserved_gross += notional
    return ExposureSplit(filled_asset, filled_strategy, filled_gross, reserved_asset, reserved_strategy, reserved_gross)


def utilisation_status(*, ruleset, now: datetime | None = None) -> dict | None:
    """Exposure against the caps of the ruleset in force, as the engine counts it: notional at
    entry price of what is filled, plus what approved orders still working reserve. A strategy's
    cap is its budget as a decision made `now` would apply it (allocated, under a policy)."""
    if ruleset is None or not ruleset.params:
        return None
    params = ruleset.params
    now = now or timezone.now()
    split = exposure_split()
    filled_asset, filled_strategy, filled_gross = split.filled_asset, split.filled_strategy, split.filled_gross
    reserved_asset, reserved_strategy, reserved_gross = split.reserved_asset, split.reserved_strategy, split.reserved_gross
    assets = params.get("assets") or {}
    slugs = sorted(set(params.get("strategy_budgets") or {}) | set(allocation_weights(params)) | set(filled_strategy) | set(reserved_strategy))
    budgets = strategy_budgets_now(params=params, slugs=slugs, now=now)
    return {
        "version": ruleset.version,
        "portfolio": _bar("gross", filled_gross, reserved_gross, _cap(params.get("max_gross_exposure"))),
        "assets": [
            # An instrument without limits in the ruleset has no room at all (the engine's NO_LIMIT).
            _bar(symbol, filled_asset[symbol], reserved_asset[symbol],
                 _cap(assets[symbol].get("max_exposure")) if assets.get(symbol) else Decimal(0))
            for symbol in sorted(set(assets) | set(filled_asset) | set(reserved_asset))
        ],
        "strategies": [_bar(slug, filled_strategy[slug], reserved_strategy[slug], budgets[slug][1]) for slug in slugs],
    }


# --- allocation by strategy ----------------------------------------------------------------

CENT = Decimal("0.01")


def amount_text(value: str | Decimal | None) -> str | None:
    """An amount of quote currency to the cent, half to even (the exact value goes on hover)."""
    return price_text(value, CENT)


def strategy_budget_in_force(*, params: dict, strategy: str, trailing_pnl: str = "0") -> Decimal:
    """The budget the strategy_budget check applies to `strategy` under these params, from the
    engine's own functions as its _budget calls them: the allocated budget under a policy (no
    weight, no budget), else the strategy's own budget or the default one."""
    if params.get("allocation_policy", "none") == "none":
        return engine.compiled(params).strategy_budget(strategy).value
    return engine.allocated_budgets(params, {strategy: trailing_pnl}).get(strategy, Decimal(0))


def allocation_weights(params: dict) -> dict[str, Decimal]:
    """{slug: weight} of the ruleset's allocation policy; {} without one."""
    if params.get("allocation_policy", "none") == "none":
        return {}
    return engine.allocation_weights(params.get("allocation_weights") or "")


def strategy_budgets_now(*, params: dict, slugs, now: datetime) -> dict[str, tuple[str, Decimal]]:
    """(trailing PnL, budget) of each strategy as a decision made `now` would see them: the
    trailing PnL only scales a budget under pnl_scaled ("0" otherwise)."""
    strategy_ids = dict(Strategy.objects.filter(slug__in=slugs).values_list("slug", "id"))
    out = {}
    for slug in slugs:
        trailing = "0"
        if params.get("allocation_policy") == "pnl_scaled" and slug in strategy_ids:
            trailing = allocation_trailing_pnl(strategy_id=strategy_ids[slug], rules=params, at=now)
        out[slug] = (trailing, strategy_budget_in_force(params=params, strategy=slug, trailing_pnl=trailing))
    return out


def allocation_status(*, ruleset, now: datetime | None = None) -> dict | None:
    """Each strategy under the ruleset in force: its weight and budget, its use of that budget,
    its realized PnL (today, UTC, and in total) and its drawdown from its high-water mark.

    Every figure is what the checks see: the budget is the strategy_budget check's (under
    pnl_scaled, scaled by the trailing PnL a decision made `now` would carry), the use is the
    exposure that check counts (filled at entry price, plus approved orders still working),
    and today's PnL and the drawdown are the daily_loss and drawdown checks' ledger inputs."""
    if ruleset is None or not ruleset.params:
        return None
    params = ruleset.params
    now = now or timezone.now()
    policy = params.get("allocation_policy", "none")
    weights = allocation_weights(params)
    strategy_ids = dict(Strategy.objects.values_list("slug", "id"))
    split = exposure_split()
    slugs = sorted(set(strategy_ids) | set(weights) | set(split.filled_strategy) | set(split.reserved_strategy))
    budgets = strategy_budgets_now(params=params, slugs=slugs, now=now)
    realized = realized_risk_by_strategy(strategy_ids=list(strategy_ids.values()), day=now.astimezone(dt_timezone.utc).date())
    no_pnl = {"today": "0", "total": "0", "high_water_mark": "0", "drawdown": "0"}
    rows = []
    for slug in slugs:
        trailing, budget = budgets[slug]
        pnl = realized.get(strategy_ids.get(slug), no_pnl)
        weight = weights.get(slug)
        rows.append(
            {
                "strategy": slug,
                "weight": None if weight is None else engine.fmt(weight),
                "weight_percent": None if weight is None else decimal_text((weight * 100).normalize()),
                "trailing_pnl": amount_text(trailing),
                "trailing_pnl_exact": trailing,
                "budget": amount_text(budget),
                "budget_exact": decimal_text(budget),
                "use": _bar(slug, split.filled_strategy[slug], split.reserved_strategy[slug], budget),
                "used": amount_text(split.filled_strategy[slug] + split.reserved_strategy[slug]),
                **{key: amount_text(value) for key, value in pnl.items()},
                **{f"{key}_exact": value for key, value in pnl.items()},
            }
        )
    alpha = ruleset.mode == Mode.ALPHA
    total = sum((Decimal(p["total"]) for p in realized.values()), Decimal(0))
    return {
        "version": ruleset.version,
        "policy": policy,
        "portfolio_risk_budget": amount_text(params.get("portfolio_risk_budget")) if policy != "none" else None,
        "window_days": params.get("allocation_window_days"),
        "scale_min": params.get("allocation_scale_min"),
        "scale_max": params.get("allocation_scale_max"),
        "max_daily_loss_strategy": params.get("max_daily_loss_strategy"),
        "max_drawdown_strategy": params.get("max_drawdown_strategy"),
        "rows": rows,
        "alpha": alpha,
        "alpha_reason": ALPHA_PNL_REASON,
        "pnl_note": realized_pnl_note(alpha=alpha, realized_pnl=decimal_text(total)),
    }


# --- executions, live and sandbox apart -------------------------------------------------

ACTIVITY_TABS = ("live", "sandbox")
ACTIVITY_LIMIT = 20


def executions_recent(*, tab: str, limit: int = ACTIVITY_LIMIT) -> dict:
    """The latest fills of one kind: `live` (sent to a real venue) or `sandbox` (simulated),
    newest first, prices to the instrument's tick; with the count of each kind for the tabs."""
    live = tab == "live"
    fills = (
        Fill.objects.filter(live=live)
        .select_related("strategy", "instrument", "order")
        .order_by("-filled_at", "-id")[:limit]
    )
    rows = [
        {
            "fill": f,
            "price": price_text(f.price, f.instrument.price_tick),
            "proposal_id": f.order.proposal_id,
            "client_order_id": f.order.client_order_id,
        }
        for f in fills
    ]
    counts = {"live": Fill.objects.filter(live=True).count(), "sandbox": Fill.objects.filter(live=False).count()}
    return {"tab": "live" if live else "sandbox", "live": live, "rows": rows, "counts": counts, "limit": limit}


# --- decisions over time, by outcome (a server-rendered SVG) --------------------------------

CHART_HOURS = 24
CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_BOTTOM = 720, 180, 36, 20
OUTCOMES = ("approve", "modify", "block")


def decisions_over_time(*, hours: int = CHART_HOURS, now: datetime | None = None) -> dict:
    """Decisions of the last `hours` whole hours (the current one included), counted per hour
    and outcome, with the geometry of a stacked bar chart: bars, y-axis ticks, hour labels."""
    now = now or timezone.now()
    end = now.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    counts = [dict.fromkeys(OUTCOMES, 0) for _ in range(hours)]
    for decided_at, outcome in Decision.objects.filter(decided_at__gte=start, decided_at__lt=end).values_list("decided_at", "outcome").iterator():
        slot = int((decided_at - start).total_seconds() // 3600)
        if 0 <= slot < hours and outcome in OUTCOMES:
            counts[slot][outcome] += 1
    peak = max((sum(c.values()) for c in counts), default=0)
    scale_top = _nice_ceiling(peak)
    plot_w, plot_h = CHART_WIDTH - CHART_LEFT - 4, CHART_HEIGHT - CHART_BOTTOM - 6
    slot_w = plot_w / hours
    bars, labels = [], []
    for i, c in enumerate(counts):
        hour = start + timedelta(hours=i)
        x = CHART_LEFT + i * slot_w
        y = CHART_HEIGHT - CHART_BOTTOM
        for outcome in OUTCOMES:
            n = c[outcome]
            if not n:
                continue
            h = plot_h * n / scale_top
            y -= h
            bars.append({"x": round(x + 1, 1), "y": round(y, 1), "w": round(slot_w - 2, 1), "h": round(h, 1),
                         "outcome": outcome, "n": n, "hour": hour})
        if i % 3 == 0:
            labels.append({"x": round(x + slot_w / 2, 1), "text": f"{hour:%H}h"})
    ticks = [{"value": v, "y": round(CHART_HEIGHT - CHART_BOTTOM - plot_h * v / scale_top, 1)} for v in _ticks(scale_top)]
    totals = {o: sum(c[o] for c in counts) for o in OUTCOMES}
    return {
        "hours": hours, "start": start, "end": end, "bars": bars, "labels": labels, "ticks": ticks, "totals": totals,
        "total": sum(totals.values()), "width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT,
        "base_y": CHART_HEIGHT - CHART_BOTTOM, "right": CHART_WIDTH - 4, "label_y": CHART_HEIGHT - 6,
    }


def _nice_ceiling(n: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … at least n (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= n:
                return step * m
        step *= 10


def _ticks(top: int) -> list[int]:
    return sorted({0, top // 2, top}) if top > 1 else [0, 1]
