"""The tabular exports: for each kind, its columns and a generator of its rows.

Rows are read with server-side cursors (`.iterator()`), a chunk at a time, and handed on
one by one: an export holds one chunk in memory however long the range. Every value is
text (exact decimal strings, ISO-8601 UTC times), so CSV and XLSX carry exactly what the
database holds.
"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Callable, Iterator

from django.db.models import QuerySet

from chronosx.canonical import canonical_json, decimal_text
from exchange.models import Order
from governance.engine import CHECK_ORDER
from governance.models import Proposal, Vote
from governance.selectors.forcing import force_summary
from governance.selectors.quorum import vote_verifies
from ledger.models import AuditEvent, Fill

CHUNK = 2000


@dataclass(frozen=True)
class Table:
    """One export kind: its columns and its rows for a range [since, until) and an optional strategy."""

    kind: str
    columns: tuple[str, ...]
    rows: Callable[..., Iterator[tuple]]
    # The records the rows are made of (same arguments as `rows`): how many there are, for progress.
    records: Callable[..., QuerySet]

    def count(self, **range_) -> int:
        return self.records(**range_).count()


def text(value) -> str:
    """A cell: exact decimals, ISO times in UTC, "" for nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.astimezone(dt_timezone.utc).isoformat()
    return str(value)


# --- proposals, with every check ------------------------------------------------------

PROPOSAL_COLUMNS = (
    "id", "received_at", "agent", "strategy", "symbol", "side", "quantity", "order_type", "limit_price",
    "reference_price", "expected_slippage_bps", "confidence", "signal_time", "intent", "status", "forced",
    "force_requested_by", "force_approved_by", "force_reason", "force_approved_at",
    "outcome", "approved_quantity", "ruleset_version", "decided_at", "decision_digest", "failed_checks",
    *(f"{part}:{rule}" for rule in CHECK_ORDER for part in ("check", "detail")),
    "other_checks",
)


def proposal_force_columns(proposal) -> list[str]:
    """forced, and who asked, who approved, why and when (empty when not forced)."""
    summary = force_summary(proposal=proposal)
    force = summary["force"] or {}
    return [text(summary["forced"]), *(text(force.get(k)) for k in ("requested_by", "approved_by", "reason", "approved_at"))]


def _proposal_records(*, since, until, strategy=None) -> QuerySet:
    qs = Proposal.objects.filter(received_at__gte=since, received_at__lt=until)
    return qs.filter(strategy__slug=strategy) if strategy else qs


def _proposal_rows(*, since, until, strategy=None):
    qs = (
        _proposal_records(since=since, until=until, strategy=strategy)
        .select_related("agent", "strategy", "instrument", "decision")
        .prefetch_related("force_requests")
        .order_by("received_at", "id")
    )
    for p in qs.iterator(chunk_size=CHUNK):
        decision = getattr(p, "decision", None)
        checks = decision.checks if decision and isinstance(decision.checks, list) else []
        by_rule = {c.get("rule"): c for c in checks if isinstance(c, dict)}
        known = []
        for rule in CHECK_ORDER:
            check = by_rule.get(rule)
            if check is None:
                known += ["", ""]
            else:
                known += ["pass" if check.get("passed") else "FAIL", text(check.get("detail"))]
        others = [c for c in checks if not isinstance(c, dict) or c.get("rule") not in CHECK_ORDER]
        failed = [c["rule"] for c in checks if isinstance(c, dict) and not c.get("passed") and "rule" in c]
        yield (
            text(p.id), text(p.received_at), p.agent.name, p.strategy.slug, p.instrument.symbol, p.side,
            text(p.quantity), p.order_type, text(p.limit_price), text(p.reference_price),
            text(p.expected_slippage_bps), text(p.confidence), text(p.signal_time), p.intent, p.status,
            *proposal_force_columns(p),
            decision.outcome if decision else "", text(decision.approved_quantity) if decision else "",
            text(decision.ruleset_version) if decision else "", text(decision.decided_at) if decision else "",
            decision.digest if decision else "", " ".join(failed),
            *known,
            canonical_json(others) if others else "",
        )


# --- votes, with signatures and key ids -----------------------------------------------

VOTE_COLUMNS = (
    "proposal_id", "strategy", "symbol", "node", "verdict", "reason", "cast_at", "key_id", "decision_digest",
    "signature", "signature_verified",
)


def _vote_records(*, since, until, strategy=None) -> QuerySet:
    qs = Vote.objects.filter(cast_at__gte=since, cast_at__lt=until)
    return qs.filter(proposal__strategy__slug=strategy) if strategy else qs


def _vote_rows(*, since, until, strategy=None):
    qs = _vote_records(since=since, until=until, strategy=strategy).select_related("proposal__strategy", "proposal__instrument").order_by("cast_at", "id")
    for v in qs.iterator(chunk_size=CHUNK):
        yield (
            text(v.proposal_id), v.proposal.strategy.slug, v.proposal.instrument.symbol, v.node, v.verdict, v.reason,
            text(v.cast_at), v.key_id, v.decision_digest, v.signature,
            # Recomputed now against the registered public key, not taken on trust.
            text(vote_verifies(v)),
        )


# --- orders ---------------------------------------------------------------------------

ORDER_COLUMNS = (
    "client_order_id", "proposal_id", "strategy", "venue", "live", "symbol", "side", "order_type", "quantity",
    "limit_price", "status", "venue_order_id", "filled_quantity", "average_price", "send_attempts", "last_error",
    "created_at", "updated_at",
)


def _order_records(*, since, until, strategy=None) -> QuerySet:
    qs = Order.objects.filter(created_at__gte=since, created_at__lt=until)
    return qs.filter(proposal__strategy__slug=strategy) if strategy else qs


def _order_rows(*, since, until, strategy=None):
    qs = _order_records(since=since, until=until, strategy=strategy).select_related("proposal__strategy").order_by("created_at", "id")
    for o in qs.iterator(chunk_size=CHUNK):
        yield (
            o.client_order_id, text(o.proposal_id), o.proposal.strategy.slug, o.venue, "live" if o.live else "sandbox",
            o.symbol, o.side, o.order_type, text(o.quantity), text(o.limit_price), o.status, o.venue_order_id,
            text(o.filled_quantity), text(o.average_price), text(o.send_attempts), o.last_error,
            text(o.created_at), text(o.updated_at),
        )


# --- fills, live and sandbox marked ---------------------------------------------------

FILL_COLUMNS = (
    "filled_at", "live", "venue", "trade_id", "client_order_id", "proposal_id", "strategy", "symbol", "side",
    "intent", "price", "quantity", "notional", "fee", "fee_asset", "recorded_at",
)


def _fill_records(*, since, until, strategy=None) -> QuerySet:
    qs = Fill.objects.filter(filled_at__gte=since, filled_at__lt=until)
    return qs.filter(strategy__slug=strategy) if strategy else qs


def _fill_rows(*, since, until, strategy=None):
    qs = _fill_records(since=since, until=until, strategy=strategy).select_related("order", "strategy", "instrument").order_by("filled_at", "id")
    for f in qs.iterator(chunk_size=CHUNK):
        yield (
            text(f.filled_at), "live" if f.live else "sandbox", f.venue, f.trade_id, f.order.client_order_id,
            text(f.order.proposal_id), f.strategy.slug, f.instrument.symbol, f.side, f.intent, text(f.price),
            text(f.quantity), text(f.price * f.quantity), text(f.fee), f.fee_asset, text(f.recorded_at),
        )


# --- the audit trail --------------------------------------------------------------------

AUDIT_COLUMNS = ("seq", "created_at", "kind", "actor", "proposal_id", "payload", "prev_hash", "hash")


def _audit_records(*, since, until, strategy=None, up_to_seq=None) -> QuerySet:
    """Chained events only; `up_to_seq`: none past the head that was verified.
    With a strategy: the events of that strategy's proposals."""
    qs = AuditEvent.objects.filter(seq__isnull=False, created_at__gte=since, created_at__lt=until)
    if up_to_seq is not None:
        qs = qs.filter(seq__lte=up_to_seq)
    if strategy:
        qs = qs.filter(proposal_id__in=Proposal.objects.filter(strategy__slug=strategy).values("id"))
    return qs


def _audit_rows(*, since, until, strategy=None, up_to_seq=None):
    """In seq order."""
    qs = _audit_records(since=since, until=until, strategy=strategy, up_to_seq=up_to_seq)
    rows = qs.order_by("seq").values_list(*AUDIT_COLUMNS)
    for seq, created_at, kind, actor, proposal_id, payload, prev_hash, hash_ in rows.iterator(chunk_size=CHUNK):
        yield (text(seq), text(created_at), kind, actor, text(proposal_id), payload, prev_hash, hash_)


TABLES = {
    "proposals": Table("proposals", PROPOSAL_COLUMNS, _proposal_rows, _proposal_records),
    "votes": Table("votes", VOTE_COLUMNS, _vote_rows, _vote_records),
    "orders": Table("orders", ORDER_COLUMNS, _order_rows, _order_records),
    "fills": Table("fills", FILL_COLUMNS, _fill_rows, _fill_records),
    "audit": Table("audit", AUDIT_COLUMNS, _audit_rows, _audit_records),
}
