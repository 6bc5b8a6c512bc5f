"""The figures of the compliance report for a period: counts, rule hits, execution, controls.

Everything is aggregated while rows stream past (or by the database), so a long period
costs time, never memory; the lists of events (breakers, trading state, force-executions)
are capped at EVENTS_SHOWN each, with the total count kept.
"""

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q

from chronosx.canonical import decimal_text
from compliance.selectors.rows import CHUNK
from exchange.models import Order
from governance.engine import CHECK_ORDER
from governance.models import Decision, ForceRequest, Proposal, Ruleset, Vote
from ledger.models import AuditEvent, Fill, RealizedPnl

EVENTS_SHOWN = 200
BPS = Decimal(10000)


@dataclass
class EventList:
    rows: list = field(default_factory=list)  # (time, kind, actor, detail)
    total: int = 0


@dataclass
class ReportFigures:
    proposals_by_status: dict
    decisions_by_outcome: dict
    decisions_by_strategy: dict  # {slug: {outcome: n}}
    rule_hits: list  # [(rule, failed, in blocks)]
    forced: int
    votes: dict  # {"approve": n, "reject": n}
    orders_by_status: dict
    fills: dict  # {"live"|"sandbox": {"fills", "quantity", "notional"}}
    fees: dict  # {("live"|"sandbox", asset): amount}
    realized: dict  # {"live"|"sandbox": {"amount", "gross", "fees", "closes"}}
    execution: list  # [{"mode", "strategy", "symbol", "fills", "quantity", "slippage_bps", "fees", "seconds_to_fill"}]
    rulesets: list  # [{"version", "mode", "published_at", "published_by", "submitted_by", "created_by", "from", "until"}]
    breakers: EventList
    trading: EventList
    force: EventList


def _scope(qs, strategy, path):
    return qs.filter(**{path: strategy}) if strategy else qs


def _events(*, since, until, prefix: str, detail) -> EventList:
    qs = AuditEvent.objects.filter(created_at__gte=since, created_at__lt=until, kind__startswith=prefix)
    out = EventList(total=qs.count())
    for created_at, kind, actor, payload in qs.order_by("created_at", "id").values_list(
        "created_at", "kind", "actor", "payload"
    )[:EVENTS_SHOWN]:
        try:
            body = json.loads(payload)
        except ValueError:
            body = {}
        out.rows.append((created_at, kind, actor, detail(body if isinstance(body, dict) else {})))
    return out


def _rule_hits(decisions) -> list:
    failed, blocking = Counter(), Counter()
    for outcome, checks in decisions.values_list("outcome", "checks").iterator(chunk_size=CHUNK):
        for check in checks if isinstance(checks, list) else ():
            if isinstance(check, dict) and not check.get("passed"):
                rule = str(check.get("rule"))
                failed[rule] += 1
                if outcome == Decision.Outcome.BLOCK:
                    blocking[rule] += 1
    order = {rule: i for i, rule in enumerate(CHECK_ORDER)}
    rules = sorted(failed, key=lambda r: (-blocking[r], -failed[r], order.get(r, len(order)), r))
    return [(rule, failed[rule], blocking[rule]) for rule in rules]


def _execution(fills) -> list:
    """Quantity-weighted slippage of fill price against the proposal's reference price
    (positive: worse for us), fees, and time from order to fill, per mode, strategy, symbol."""
    acc = {}
    rows = fills.select_related("order__proposal", "strategy", "instrument").order_by("filled_at", "id")
    for f in rows.iterator(chunk_size=CHUNK):
        reference = f.order.proposal.reference_price
        sign = 1 if f.side == "buy" else -1
        key = ("live" if f.live else "sandbox", f.strategy.slug, f.instrument.symbol)
        a = acc.setdefault(key, {"fills": 0, "quantity": Decimal(0), "weighted": Decimal(0), "fees": defaultdict(Decimal),
                                 "seconds": 0.0})
        a["fills"] += 1
        a["quantity"] += f.quantity
        if reference:
            a["weighted"] += sign * (f.price - reference) / reference * BPS * f.quantity
        a["fees"][f.fee_asset] += f.fee
        a["seconds"] += max((f.filled_at - f.order.created_at).total_seconds(), 0.0)
    out = []
    for (mode, strategy, symbol), a in sorted(acc.items()):
        out.append(
            {
                "mode": mode,
                "strategy": strategy,
                "symbol": symbol,
                "fills": a["fills"],
                "quantity": decimal_text(a["quantity"]),
                "slippage_bps": decimal_text((a["weighted"] / a["quantity"]).quantize(Decimal("0.01"))) if a["quantity"] else "",
                "fees": ", ".join(f"{decimal_text(v)} {asset}" for asset, v in sorted(a["fees"].items())),
                "seconds_to_fill": f"{a['seconds'] / a['fills']:.1f}",
            }
        )
    return out


def _rulesets_in_force(*, since, until) -> list:
    """The published versions in force at some time in [since, until): the one in force at
    `since` and every one published before `until`, with who approved them."""
    published = Ruleset.objects.filter(status=Ruleset.Status.PUBLISHED, published_at__isnull=False)
    first = published.filter(published_at__lte=since).order_by("-published_at", "-version").first()
    later = list(published.filter(published_at__gt=since, published_at__lt=until).order_by("published_at", "version"))
    chain = ([first] if first else []) + later
    out = []
    for i, r in enumerate(chain):
        out.append(
            {
                "version": r.version,
                "mode": r.mode,
                "published_at": r.published_at,
                "published_by": r.published_by,
                "submitted_by": r.submitted_by,
                "created_by": r.created_by,
                "until": chain[i + 1].published_at if i + 1 < len(chain) else None,
            }
        )
    return out


def report_figures(*, since, until, strategy: str | None = None) -> ReportFigures:
    proposals = _scope(Proposal.objects.filter(received_at__gte=since, received_at__lt=until), strategy, "strategy__slug")
    decisions = _scope(
        Decision.objects.filter(proposal__received_at__gte=since, proposal__received_at__lt=until),
        strategy,
        "proposal__strategy__slug",
    )
    by_strategy = defaultdict(dict)
    for slug, outcome, n in decisions.values_list("proposal__strategy__slug", "outcome").annotate(n=Count("pk")).order_by():
        by_strategy[slug][outcome] = n
    forced = proposals.filter(force_requests__status=ForceRequest.Status.APPROVED).distinct().count()
    votes = _scope(Vote.objects.filter(cast_at__gte=since, cast_at__lt=until), strategy, "proposal__strategy__slug")
    orders = _scope(Order.objects.filter(created_at__gte=since, created_at__lt=until), strategy, "proposal__strategy__slug")
    fills = _scope(Fill.objects.filter(filled_at__gte=since, filled_at__lt=until), strategy, "strategy__slug")

    fill_totals = {mode: {"fills": 0, "quantity": Decimal(0), "notional": Decimal(0)} for mode in ("live", "sandbox")}
    fees = defaultdict(Decimal)
    for live, price, quantity, fee, asset in fills.values_list("live", "price", "quantity", "fee", "fee_asset").iterator(
        chunk_size=CHUNK
    ):
        t = fill_totals["live" if live else "sandbox"]
        t["fills"] += 1
        t["quantity"] += quantity
        t["notional"] += price * quantity
        fees[("live" if live else "sandbox", asset)] += fee

    realized = {mode: {"amount": Decimal(0), "gross": Decimal(0), "fees": Decimal(0), "closes": 0} for mode in ("live", "sandbox")}
    pnl = _scope(
        RealizedPnl.objects.filter(fill__filled_at__gte=since, fill__filled_at__lt=until), strategy, "strategy__slug"
    )
    for live, amount, gross, fee in pnl.values_list("live", "amount", "gross", "fees").iterator(chunk_size=CHUNK):
        r = realized["live" if live else "sandbox"]
        r["amount"] += amount
        r["gross"] += gross
        r["fees"] += fee
        r["closes"] += 1

    def reason(body):
        return str(body.get("reason", ""))

    return ReportFigures(
        proposals_by_status=dict(proposals.values_list("status").annotate(n=Count("pk")).order_by("status")),
        decisions_by_outcome=dict(decisions.values_list("outcome").annotate(n=Count("pk")).order_by("outcome")),
        decisions_by_strategy=dict(sorted(by_strategy.items())),
        rule_hits=_rule_hits(decisions),
        forced=forced,
        votes=votes.aggregate(
            approve=Count("pk", filter=Q(verdict=Vote.Verdict.APPROVE)), reject=Count("pk", filter=Q(verdict=Vote.Verdict.REJECT))
        ),
        orders_by_status=dict(orders.values_list("status").annotate(n=Count("pk")).order_by("status")),
        fills=fill_totals,
        fees=dict(sorted(fees.items())),
        realized=realized,
        execution=_execution(fills),
        rulesets=_rulesets_in_force(since=since, until=until),
        breakers=_events(since=since, until=until, prefix="breaker.",
                         detail=lambda b: f"{b.get('breaker', '')}: {reason(b)}"),
        trading=_events(since=since, until=until, prefix="trading.", detail=reason),
        force=_events(since=since, until=until, prefix="force.",
                      detail=lambda b: " ".join(f"{k}={v}" for k, v in sorted(b.items()) if not isinstance(v, (dict, list)))),
    )
