import decimal
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import F

from chronosx.canonical import decimal_text
from ledger.models import AuditEvent, Fill, Lot, Position, RealizedPnl

GENESIS_HASH = "0" * 64
BPS = Decimal(10000)



# --- audit chain -------------------------------------------------------------------


class ChainCheckpoint(NamedTuple):
    """A (seq, hash) of the chain that someone outside the database vouches for, already
    verified by the caller (governance checks the node signatures); `label` says whose it is."""

    seq: int
    hash: str
    label: str


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int  # events that verified
    head_hash: str
    broken_seq: int | None = None
    broken_kind: str | None = None
    reason: str | None = None
    # "ok"; "broken": an event does not verify; against a checkpoint: "rewritten" (its seq
    # holds another hash) or "truncated" (its seq is past the chain's end).
    outcome: str = "ok"
    checkpoints_matched: int = 0
    # ok: the newest checkpoint the chain matched; "rewritten"/"truncated": the one it contradicts.
    checkpoint: ChainCheckpoint | None = None


def audit_chain_head() -> tuple[int, str] | None:
    """(seq, hash) of the newest event, None for an empty chain: what a checkpoint anchors.
    The one place that knows where the head is, so a batched chain can change it alone."""
    return AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first()


def audit_unchained_count() -> int:
    """Events written but not linked into the chain yet (the sequencer links them within a second)."""
    return AuditEvent.objects.filter(hash__isnull=True).count()


def audit_chain_hash_at(seq: int) -> str | None:
    """The stored hash of event `seq`, None when there is no such event."""
    return AuditEvent.objects.filter(seq=seq).values_list("hash", flat=True).first()


def audit_chain_verify(*, chunk_size: int = 5000, checkpoints=(), on_progress=None) -> ChainReport:
    """Walk the whole chain in seq order, streaming; stop at the first event that does not verify.

    Each event must have the next seq (1, 2, 3… no gap, no repeat), hold the hash of
    the one before (the first: the genesis hash) and hash to its stored hash.

    `checkpoints`: ChainCheckpoint (or (seq, hash, label)) the caller has verified. The
    event at each one's seq must carry its hash: the hash commits to every event before
    it, so a chain changed and re-hashed up to there fails ("rewritten"); a checkpoint
    past the last event means the newest events were deleted ("truncated"). Read them
    before calling: the chain only grows, so it then holds every seq they cover.

    `on_progress(count)`, when given, is called after every `chunk_size` events that verified.
    """
    checkpoints = sorted((ChainCheckpoint(*c) for c in checkpoints), key=lambda c: -c.seq)  # stable: ties keep order
    by_seq = defaultdict(list)
    for checkpoint in checkpoints:
        by_seq[checkpoint.seq].append(checkpoint)
    matched, newest_matched = 0, None
    # Same formula as ledger.services.audit_event_hash, inlined: this loop is the hot path.
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    dumps, sha256 = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode, hashlib.sha256
    for seq, kind, actor, created_at, proposal_id, payload, prev_hash, stored_hash in _audit_rows(chunk_size):
        reason = None
        if seq != expected_seq:
            reason = f"seq {seq} where {expected_seq} was expected (events missing or renumbered)"
        elif prev_hash != prev:
            reason = "prev_hash does not match the hash of the event before"
        else:
            header = dumps(
                {"seq": seq, "kind": kind, "actor": actor, "created_at": created_at, "proposal_id": proposal_id}
            )
            if sha256(f"{prev}\n{header}\n{payload}".encode()).hexdigest() != stored_hash:
                reason = "content does not match its hash (the event was altered)"
        if reason:
            return ChainReport(False, count, prev, broken_seq=seq, broken_kind=kind, reason=reason, outcome="broken")
        for checkpoint in by_seq.get(seq, ()):
            if checkpoint.hash != stored_hash:
                since = f" (after seq {newest_matched.seq}, where a checkpoint still matches)" if newest_matched else ""
                reason = (
                    f"checkpoint of {checkpoint.label} holds hash {checkpoint.hash} at seq {seq}, the chain holds "
                    f"{stored_hash} there: an event up to seq {seq}{since} was changed and the chain re-hashed"
                )
                return ChainReport(
                    False, count, prev, broken_seq=seq, broken_kind=kind, reason=reason, outcome="rewritten",
                    checkpoints_matched=matched, checkpoint=checkpoint,
                )
            matched += 1
            newest_matched = checkpoint
        prev, expected_seq, count = stored_hash, expected_seq + 1, count + 1
        if on_progress is not None and count % chunk_size == 0:
            on_progress(count)
    last_seq = expected_seq - 1
    beyond = [c for c in checkpoints if c.seq > last_seq]
    if beyond:
        checkpoint = beyond[0]  # the newest: it shows how much is gone
        ends = f"the chain ends at seq {last_seq}" if last_seq else "the chain holds no events"
        reason = (
            f"checkpoint of {checkpoint.label} covers seq {checkpoint.seq} (hash {checkpoint.hash}), "
            f"{ends}: newest events were deleted"
        )
        return ChainReport(
            False, count, prev, reason=reason, outcome="truncated", checkpoints_matched=matched, checkpoint=checkpoint
        )
    return ChainReport(True, count, prev, checkpoints_matched=matched, checkpoint=checkpoints[0] if checkpoints else None)


# PostgreSQL renders created_at exactly as Python's datetime.isoformat() in UTC
# (no fraction when the microseconds are 0), so no row is parsed into a datetime.
_PG_AUDIT_ROWS = """
SELECT seq, kind, actor,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
         || CASE WHEN to_char(created_at AT TIME ZONE 'UTC', 'US') = '000000' THEN ''
                 ELSE '.' || to_char(created_at AT TIME ZONE 'UTC', 'US') END
         || '+00:00',
       proposal_id::text, payload, prev_hash, hash
FROM ledger_auditevent WHERE seq IS NOT NULL ORDER BY seq
"""


def _audit_rows(chunk_size: int):
    """(seq, kind, actor, created_at ISO text, proposal_id text|None, payload, prev_hash, hash), in seq order."""
    if connection.vendor == "postgresql":
        # A server-side cursor inside one transaction: constant memory, one snapshot.
        with transaction.atomic():
            cursor = connection.chunked_cursor()
            try:
                cursor.execute(_PG_AUDIT_ROWS)
                while rows := cursor.fetchmany(chunk_size):
                    yield from rows
            finally:
                cursor.close()
        return
    rows = (
        AuditEvent.objects.filter(seq__isnull=False)
        .order_by("seq")
        .values_list("seq", "kind", "actor", "created_at", "proposal_id", "payload", "prev_hash", "hash")
        .iterator(chunk_size=chunk_size)
    )
    for seq, kind, actor, created_at, proposal_id, payload, prev_hash, stored_hash in rows:
        yield (
            seq, kind, actor, created_at.isoformat(), None if proposal_id is None else str(proposal_id),
            payload, prev_hash, stored_hash,
        )


# --- realized PnL, fees, positions ---------------------------------------------------


def _scoped(qs, strategies):
    return qs if strategies is None else qs.filter(strategy__in=strategies)


def realized_pnl_total(*, strategies=None) -> Decimal:
    return sum((r.amount for r in _scoped(RealizedPnl.objects.all(), strategies)), Decimal(0))


def realized_pnl_by(*, key: str, strategies=None, since=None, until=None) -> dict[str, dict[str, str]]:
    """Realized PnL grouped by "strategy", "instrument" or "day":
    {group: {"amount", "gross", "fees", "quantity", "closes"}} in quote currency."""
    group_of = {
        "strategy": lambda r: r.strategy.slug,
        "instrument": lambda r: r.instrument.symbol,
        "day": lambda r: r.date.isoformat(),
    }[key]
    qs = _scoped(RealizedPnl.objects.select_related("strategy", "instrument"), strategies)
    if since is not None:
        qs = qs.filter(date__gte=since)
    if until is not None:
        qs = qs.filter(date__lte=until)
    totals = defaultdict(lambda: {"amount": Decimal(0), "gross": Decimal(0), "fees": Decimal(0), "quantity": Decimal(0), "closes": 0})
    for row in qs.order_by("date", "id"):
        t = totals[group_of(row)]
        t["amount"] += row.amount
        t["gross"] += row.gross
        t["fees"] += row.fees
        t["quantity"] += row.quantity
        t["closes"] += 1
    return {
        group: {k: v if k == "closes" else decimal_text(v) for k, v in t.items()} for group, t in sorted(totals.items())
    }


def fees_paid_by_asset(*, strategies=None) -> dict[str, str]:
    """Every fee paid, in the asset it was paid in: nothing is converted."""
    totals = defaultdict(Decimal)
    for fee, asset in _scoped(Fill.objects.all(), strategies).values_list("fee", "fee_asset"):
        totals[asset] += Decimal(fee)
    return {asset: decimal_text(total) for asset, total in sorted(totals.items())}


def position_rows(*, strategies=None) -> list[dict]:
    """Open positions per strategy and instrument, at entry price."""
    positions = _scoped(Position.objects.select_related("strategy", "instrument"), strategies)
    rows = []
    for p in positions.order_by("strategy__slug", "instrument__symbol"):
        if p.quantity == 0 and p.entry_notional == 0:
            continue
        rows.append(
            {
                "strategy": p.strategy.slug,
                "symbol": p.instrument.symbol,
                "quantity": decimal_text(p.quantity),
                "average_entry_price": _average_entry_price(p),
                "entry_notional": decimal_text(p.entry_notional),
            }
        )
    return rows


def _average_entry_price(position: Position) -> str | None:
    """Σ remaining × entry / Σ remaining over the open lots on the position's side."""
    if position.quantity == 0:
        return None
    direction = Lot.Direction.LONG if position.quantity > 0 else Lot.Direction.SHORT
    lots = Lot.objects.filter(
        strategy_id=position.strategy_id, instrument_id=position.instrument_id, direction=direction, closed_at__isnull=True
    )
    quantity = notional = Decimal(0)
    for lot in lots:
        quantity += lot.remaining
        notional += lot.remaining * lot.entry_price
    if quantity == 0:
        return None
    with decimal.localcontext() as ctx:
        ctx.prec = 28
        return decimal_text((notional / quantity).normalize())


def fees_paid_in_quote(*, strategies=None) -> Decimal:
    """Fees paid in each instrument's quote currency (USDT): the ones realized PnL nets out."""
    fills = _scoped(Fill.objects.filter(fee_asset=F("instrument__quote_asset")), strategies)
    return sum((Decimal(fee) for fee in fills.values_list("fee", flat=True)), Decimal(0))


def portfolio_report(*, strategies=None, mode: str) -> dict:
    """Realized-only portfolio (CONTRACT.md): positions and exposure at entry price,
    nothing marked to market; PnL only from closed lots, net of fees. `mode` is the
    ruleset's (alpha | full), given by the caller: the ledger knows no rules."""
    rows = position_rows(strategies=strategies)
    by_asset, by_strategy, gross = defaultdict(Decimal), defaultdict(Decimal), Decimal(0)
    for row in rows:
        notional = Decimal(row["entry_notional"])
        by_asset[row["symbol"]] += notional
        by_strategy[row["strategy"]] += notional
        gross += notional
    fees = fees_paid_by_asset(strategies=strategies)
    report = {
        "mode": mode,
        "realized_pnl": decimal_text(realized_pnl_total(strategies=strategies)),
        "fees_paid": decimal_text(fees_paid_in_quote(strategies=strategies)),
        "fees_paid_by_asset": fees,
        "positions": [{k: row[k] for k in ("strategy", "symbol", "quantity", "average_entry_price")} for row in rows],
        "exposure": {
            "gross": decimal_text(gross),
            "by_asset": {k: decimal_text(v) for k, v in sorted(by_asset.items())},
            "by_strategy": {k: decimal_text(v) for k, v in sorted(by_strategy.items())},
        },
        "realized_pnl_by_strategy": {k: v["amount"] for k, v in realized_pnl_by(key="strategy", strategies=strategies).items()},
    }
    if mode == "alpha":
        realized = _scoped(RealizedPnl.objects.all(), strategies)
        if not realized.exists():
            report["realized_pnl_note"] = "ALPHA mode: exits are disabled by governance, so no PnL is realized"
        else:
            # Realized while exits were enabled (FULL) and kept: the note must not contradict the figure.
            last = realized.order_by("-date", "-id").values_list("date", flat=True).first()
            report["realized_pnl_note"] = (
                f"ALPHA mode: exits are disabled by governance, so no more PnL is realized; the figure was realized "
                f"by {realized.count()} earlier closes while exits were enabled (the last on {last.isoformat()})"
            )
    else:
        report["execution_quality"] = execution_quality(strategies=strategies)
    return report


# --- execution quality ---------------------------------------------------------------


def execution_quality(*, strategies=None) -> dict:
    """Fill price against the proposal's reference price, per strategy and instrument.

    slippage_bps is signed so that positive is worse for us (paid above the
    reference on a buy, received below it on a sell), quantity-weighted. Live
    (venue) and sandbox fills are reported apart and never mixed: only "live" is
    real execution.
    """
    acc = {}
    fills = _scoped(Fill.objects.select_related("strategy", "instrument", "order__proposal"), strategies)
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        for fill in fills.order_by("filled_at", "id"):
            reference = fill.order.proposal.reference_price
            sign = 1 if fill.side == "buy" else -1
            bps = sign * (fill.price - reference) / reference * BPS
            key = ("live" if fill.live else "sandbox", fill.strategy.slug, fill.instrument.symbol)
            a = acc.setdefault(key, {"fills": 0, "quantity": Decimal(0), "weighted": Decimal(0), "fees": defaultdict(Decimal)})
            a["fills"] += 1
            a["quantity"] += fill.quantity
            a["weighted"] += bps * fill.quantity
            a["fees"][fill.fee_asset] += fill.fee
        out = {"live": {}, "sandbox": {}}
        for (kind, strategy, symbol), a in sorted(acc.items()):
            out[kind].setdefault(strategy, {})[symbol] = {
                "fills": a["fills"],
                "quantity": decimal_text(a["quantity"]),
                "slippage_bps": decimal_text((a["weighted"] / a["quantity"]).quantize(Decimal("0.01"))),
                "fees": {asset: decimal_text(v) for asset, v in sorted(a["fees"].items())},
            }
    return out


# --- realized losses, for the post-ALPHA checks ------------------------------------------


def realized_loss_inputs(*, strategy_id, instrument_id, day) -> dict:
    """What the loss checks look at, from the realized PnL of closing fills (plain data):

    realized_today: realized PnL of the UTC `day` for the strategy, the instrument (all
      strategies) and the portfolio;
    drawdown: realized PnL since its high-water mark (the highest cumulative realized PnL,
      at least 0), for the strategy and the portfolio: 0 or negative;
    loss_streak: consecutive losing closes (most recent first) on this strategy and
      instrument, and when the most recent of them was filled (None without one).

    In ALPHA nothing is ever closed, so every figure is 0.

    Every decision and every portfolio vote asks, and the closes only grow: on PostgreSQL the
    database folds them (below), so no close is read back into Python."""
    if connection.vendor == "postgresql":
        return _realized_loss_fold_in_database(strategy_id=strategy_id, instrument_id=instrument_id, day=day)
    with decimal.localcontext() as exact:
        exact.prec = 60  # sums of exact amounts stay exact
        return _realized_loss_fold(_realized_rows(), strategy_id, instrument_id, day)


def realized_risk_by_strategy(*, strategy_ids, day) -> dict:
    """For each strategy, from one read of the ledger: its realized PnL of the UTC `day` and
    its drawdown, exactly as realized_loss_inputs gives them to the loss checks, with its
    realized PnL in total and its high-water mark (total - drawdown). Text, as those are."""
    rows = list(_realized_rows())
    out = {}
    with decimal.localcontext() as exact:
        exact.prec = 60
        for strategy_id in strategy_ids:
            inputs = _realized_loss_fold(rows, strategy_id, None, day)
            total = sum((Decimal(r[3]) for r in rows if r[0] == strategy_id), Decimal(0))
            drawdown = Decimal(inputs["drawdown"]["strategy"])
            out[strategy_id] = {
                "today": inputs["realized_today"]["strategy"],
                "total": decimal_text(total),
                "high_water_mark": decimal_text(total - drawdown),
                "drawdown": inputs["drawdown"]["strategy"],
            }
    return out


def _realized_rows():
    """(strategy_id, instrument_id, date, amount, filled_at) of every close, in fill order."""
    return RealizedPnl.objects.order_by("fill__filled_at", "id").values_list(
        "strategy_id", "instrument_id", "date", "amount", "fill__filled_at"
    )


def _realized_loss_fold(rows, strategy_id, instrument_id, day) -> dict:
    today = {"strategy": Decimal(0), "asset": Decimal(0), "portfolio": Decimal(0)}
    cumulative = {"strategy": Decimal(0), "portfolio": Decimal(0)}
    high = {"strategy": Decimal(0), "portfolio": Decimal(0)}
    streak, ended_at = 0, None
    for r_strategy, r_instrument, r_date, amount, filled_at in rows:
        amount = Decimal(amount)
        mine = r_strategy == strategy_id
        if r_date == day:
            today["portfolio"] += amount
            if mine:
                today["strategy"] += amount
            if r_instrument == instrument_id:
                today["asset"] += amount
        cumulative["portfolio"] += amount
        high["portfolio"] = max(high["portfolio"], cumulative["portfolio"])
        if mine:
            cumulative["strategy"] += amount
            high["strategy"] = max(high["strategy"], cumulative["strategy"])
            if r_instrument == instrument_id:
                if amount < 0:
                    streak, ended_at = streak + 1, filled_at
                else:
                    streak, ended_at = 0, None
    return {
        "realized_today": {key: decimal_text(value) for key, value in today.items()},
        "drawdown": {key: decimal_text(cumulative[key] - high[key]) for key in cumulative},
        "loss_streak": {"count": streak, "ended_at": ended_at.isoformat() if ended_at else None},
    }


# _realized_loss_fold in SQL, over the closes in the same order (fill time, then id). numeric
# is exact and its scales follow Decimal's exponents (a sum keeps its terms' finest scale), and
# a drawdown's scale is its total's, as in the fold: the texts are the fold's
# (tests/ledger/test_realized_loss_fold.py holds the two equal).
_REALIZED_LOSS_SQL = """
WITH closes AS (
    SELECT realized.id, realized.strategy_id, realized.instrument_id, realized.date,
           realized.amount::numeric AS amount, fill.filled_at
    FROM {realized} AS realized JOIN {fill} AS fill ON fill.id = realized.fill_id
),
book AS (SELECT * FROM closes WHERE strategy_id = %(strategy)s AND instrument_id = %(instrument)s),
last_gain AS (SELECT filled_at, id FROM book WHERE amount >= 0 ORDER BY filled_at DESC, id DESC LIMIT 1),
streak AS (
    SELECT count(*) AS count, max(filled_at) AS ended_at FROM book
    WHERE amount < 0 AND (NOT EXISTS (SELECT FROM last_gain) OR (filled_at, id) > (SELECT filled_at, id FROM last_gain))
),
portfolio_high AS (
    SELECT max(running) AS high FROM (SELECT sum(amount) OVER (ORDER BY filled_at, id) AS running FROM closes) AS curve
),
strategy_high AS (
    SELECT max(running) AS high
    FROM (SELECT sum(amount) OVER (ORDER BY filled_at, id) AS running FROM closes WHERE strategy_id = %(strategy)s) AS curve
)
SELECT
    COALESCE(sum(amount) FILTER (WHERE date = %(day)s AND strategy_id = %(strategy)s), 0),
    COALESCE(sum(amount) FILTER (WHERE date = %(day)s AND instrument_id = %(instrument)s), 0),
    COALESCE(sum(amount) FILTER (WHERE date = %(day)s), 0),
    COALESCE(sum(amount) FILTER (WHERE strategy_id = %(strategy)s), 0) - GREATEST(0, (SELECT high FROM strategy_high)),
    COALESCE(sum(amount), 0) - GREATEST(0, (SELECT high FROM portfolio_high)),
    (SELECT count FROM streak),
    (SELECT ended_at FROM streak)
FROM closes
"""


def _realized_loss_fold_in_database(*, strategy_id, instrument_id, day) -> dict:
    sql = _REALIZED_LOSS_SQL.format(realized=RealizedPnl._meta.db_table, fill=Fill._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"strategy": strategy_id, "instrument": instrument_id, "day": day})
        today_strategy, today_asset, today_portfolio, drawdown_strategy, drawdown_portfolio, streak, ended_at = (
            cursor.fetchone()
        )
    return {
        "realized_today": {
            "strategy": decimal_text(today_strategy),
            "asset": decimal_text(today_asset),
            "portfolio": decimal_text(today_portfolio),
        },
        "drawdown": {"strategy": decimal_text(drawdown_strategy), "portfolio": decimal_text(drawdown_portfolio)},
        "loss_streak": {"count": streak, "ended_at": ended_at.isoformat() if ended_at else None},
    }


def realized_pnl_between(*, strategy_id, since, until) -> str:
    """A strategy's realized PnL from closing fills filled in [since, until], as text."""
    amounts = RealizedPnl.objects.filter(
        strategy_id=strategy_id, fill__filled_at__gte=since, fill__filled_at__lte=until
    ).values_list("amount", flat=True)
    with decimal.localcontext() as exact:
        exact.prec = 60
        return decimal_text(sum((Decimal(a) for a in amounts), Decimal(0)))
