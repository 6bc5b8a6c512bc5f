import decimal
import logging
import time
import uuid
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from chronosx.canonical import canonical_json, decimal_text, sha256_hex
from ledger.models import AUDIT_CONTENT, AuditEvent, Fill, Lot, Position, RealizedPnl

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# Any constant: the advisory lock that keeps to one sequencer, so the chain never forks.
AUDIT_CHAIN_LOCK = 7_345_001
# PostgreSQL NOTIFY channel: a round linked events up to the seq it carries (sent on commit).
AUDIT_CHAINED_CHANNEL = "chronosx_audit_chained"

# Ledger arithmetic: wide enough that price × quantity is always exact.
LEDGER_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation])
# A partial close realizes a pro-rata share of the lot's entry fee, rounded to this
# step; the lot's last close takes whatever is left, so a lot's fee shares always
# add up to exactly the fee paid.
FEE_SHARE_STEP = Decimal("1E-12")


class LedgerError(Exception):
    pass


class CloseExceedsPosition(LedgerError):
    """A closing fill for more than the open lots it could close. Governance refuses
    such closes before they are routed; this is the ledger's own guard."""


def audit_event_hash(*, seq, kind, actor, created_at, proposal_id, payload, prev_hash) -> str:
    header = canonical_json(
        {"seq": seq, "kind": kind, "actor": actor, "created_at": created_at, "proposal_id": proposal_id}
    )
    return sha256_hex(prev_hash + "\n" + header + "\n" + payload)


def audit_record(*, kind: str, actor: str, payload: dict, proposal_id=None) -> AuditEvent:
    """Write one event, unchained, inside the caller's transaction: no lock and no read of
    the chain, so concurrent transactions never wait on each other here. The sequencer
    links it into the chain once the transaction has committed (audit_chain_extend)."""
    # Hash exactly what the database gives back later: a UTC datetime with
    # microseconds, and a UUID in its canonical text form.
    return AuditEvent.objects.create(
        kind=kind,
        actor=actor,
        created_at=timezone.now().astimezone(dt_timezone.utc).isoformat(),
        proposal_id=str(uuid.UUID(str(proposal_id))) if proposal_id else None,
        payload=canonical_json(payload),
    )


# A running transaction's id as pg_stat_activity shows it (32 bits) widened to the 64 bits an
# event's txid holds (pg_current_xact_id: the epoch above them): the latest id with those low
# 32 bits at or below `next`, the first id not yet handed out. Compared as 32 bits, every txid
# would be above every running transaction once the ids wrap the first time, and nothing would
# be linked while any other transaction writes.
FULL_XID = "({next} - (({next} - {xid}) & 4294967295))"

# The oldest transaction still writing to this database (not the caller's own), or, with
# none, the first transaction id not yet handed out: no transaction below it is still open.
_PG_CHAIN_HORIZON = f"""
WITH next AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS id)
SELECT COALESCE(
    (SELECT min({FULL_XID.format(next="next.id", xid="backend_xid::text::bigint")}) FROM pg_stat_activity, next
     WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()),
    (SELECT id FROM next)
), pg_current_xact_id_if_assigned()::text::bigint
"""
_PG_COMMITTED_UNCHAINED = f"""
SELECT id, kind, actor, created_at, proposal_id, payload FROM {AuditEvent._meta.db_table}
WHERE hash IS NULL AND (txid < %s OR txid = %s) ORDER BY id LIMIT %s
"""
_CHAIN_END = f"SELECT seq, hash FROM {AuditEvent._meta.db_table} WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"


def _committed_unchained(limit: int) -> list[AuditEvent]:
    """Unchained events whose transactions have all ended, in id order.

    On PostgreSQL an event id is taken when the event is written, and its transaction may
    commit after a later one's: events of transactions younger than the oldest one still
    writing to this database wait for the next round, so that one's events, older and not
    yet visible, are not overtaken. (Nothing could be lost either way: every event is linked
    once it is visible; this keeps the chain in the order the events were written.) The
    caller's own transaction's events count as written (it sees them: a test, or a command
    that writes and then chains); the sequencer's own transaction writes none.
    SQLite runs one writer at a time, so there ids follow commits.

    The horizon is read in a statement of its own, before the events: the events' read then
    takes a later snapshot, in which every transaction below the horizon has ended and shows
    its events. (In one statement, a transaction could end between the snapshot and the read of
    pg_stat_activity, and be below the horizon with its events not yet visible.) The sequencer
    runs a round many times a second, so on PostgreSQL both are plain statements: the ORM's
    query building was most of a round's CPU."""
    if connection.vendor != "postgresql":
        return list(AuditEvent.objects.filter(hash__isnull=True).order_by("id").only(*AUDIT_CONTENT)[:limit])
    with connection.cursor() as cursor:
        cursor.execute(_PG_CHAIN_HORIZON)
        horizon, own = cursor.fetchone()
        cursor.execute(_PG_COMMITTED_UNCHAINED, [horizon, own, limit])
        rows = cursor.fetchall()
    return [
        AuditEvent(id=id, kind=kind, actor=actor, created_at=created_at, proposal_id=proposal_id, payload=payload)
        for id, kind, actor, created_at, proposal_id, payload in rows
    ]


CHAIN_ROUND_LIMIT = 5000  # events a round links at most


def audit_chain_extend(*, limit: int = CHAIN_ROUND_LIMIT) -> int:
    """The sequencer: link committed, unchained events into the hash chain, in the order of
    their ids, continuing from the chain's end. Returns how many it linked.

    One sequencer at a time (a PostgreSQL advisory lock; another caller returns 0 at once),
    and every link is a conditional write the database checks (ledger 0005): an event is
    linked once, and its content cannot change on the way."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK])
                if not cursor.fetchone()[0]:
                    return 0
        events = _committed_unchained(limit)
        if not events:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(_CHAIN_END)
            end = cursor.fetchone()
        seq, prev_hash = end or (0, GENESIS_HASH)
        for event in events:
            seq += 1
            event.seq, event.prev_hash = seq, prev_hash
            event.hash = prev_hash = audit_event_hash(
                seq=seq,
                kind=event.kind,
                actor=event.actor,
                created_at=event.created_at.astimezone(dt_timezone.utc).isoformat(),
                proposal_id=None if event.proposal_id is None else str(event.proposal_id),
                payload=event.payload,
                prev_hash=event.prev_hash,
            )
        _links_write(events)
        if connection.vendor == "postgresql":
            # Delivered when this round commits, and only then: the stream's pollers read at once.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [AUDIT_CHAINED_CHANNEL, str(seq)])
        return len(events)


def _links_write(events) -> None:
    """Write the links of a round. On PostgreSQL in one statement over arrays: Django's
    bulk_update builds a CASE per field and event, which cost the sequencer more CPU than the
    rest of its round."""
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_update(events, ["seq", "prev_hash", "hash"], batch_size=1000)
        return
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} AS event SET seq = link.seq, prev_hash = link.prev_hash, hash = link.hash
                FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS link (id, seq, prev_hash, hash)
                WHERE event.id = link.id""",
            [[e.id for e in events], [e.seq for e in events], [e.prev_hash for e in events], [e.hash for e in events]],
        )


def audit_sequencer_run(*, poll_seconds: float, rounds: int | None = None) -> None:
    """The sequencer as a loop of its own (manage.py audit_sequencer): events are linked within
    about `poll_seconds` of their commit, instead of at beat's next round (every second, which
    stays as the fallback; the advisory lock lets either run at any time).

    It polls rather than being woken by a NOTIFY from each business transaction: a transaction
    that notifies takes a cluster-wide lock at commit, which would serialize every commit of
    the pipeline. The poll is one read of the small unchained index; a round runs only when it
    finds something. `rounds` bounds the loop (tests); None runs for ever."""
    # The poll runs 50 times a second, idle or not: one plain statement, without the ORM's
    # query building (which made an idle sequencer the busiest process of an idle stack).
    unchained = f"SELECT 1 FROM {AuditEvent._meta.db_table} WHERE hash IS NULL LIMIT 1"
    while rounds is None or rounds > 0:
        rounds = None if rounds is None else rounds - 1
        try:
            with connection.cursor() as cursor:
                cursor.execute(unchained)
                waiting = cursor.fetchone() is not None
            # Another round at once only after a full one (a backlog). One that linked fewer took
            # every event it could see: at once, another would mostly find nothing, at the cost of a
            # transaction; what commits later is the next poll's.
            if waiting:
                while audit_chain_extend(limit=CHAIN_ROUND_LIMIT) == CHAIN_ROUND_LIMIT:
                    pass
        except DatabaseError:
            log.exception("audit sequencer round failed; retrying in 1 s")
            connection.close()
            time.sleep(1)
            continue
        time.sleep(poll_seconds)


def fill_record(*, order, trade_id: str, price, quantity, fee, fee_asset: str, filled_at):
    """Store one venue fill, once: a fill seen again (same venue trade id) changes nothing.

    Returns the new Fill, or None when it was already recorded. In the same
    transaction: an opening fill adds a FIFO lot (its fee attached to that lot); a
    closing fill (proposal intent "close") consumes the oldest opposite lots and
    writes its realized PnL; the position is re-derived from the open lots; the
    fill is audited. A close larger than the open lots raises CloseExceedsPosition
    and records nothing.
    """
    proposal = order.proposal
    with transaction.atomic(), decimal.localcontext(LEDGER_CONTEXT):
        try:
            with transaction.atomic():
                fill = Fill.objects.create(
                    venue=order.venue,
                    trade_id=str(trade_id),
                    order=order,
                    strategy_id=proposal.strategy_id,
                    instrument_id=proposal.instrument_id,
                    side=order.side,
                    intent=proposal.intent,
                    price=price,
                    quantity=quantity,
                    fee=fee,
                    fee_asset=fee_asset,
                    filled_at=filled_at,
                    live=order.live,
                )
        except IntegrityError:
            return None
        fill.refresh_from_db()  # exact Decimals back from the stored strings
        if fill.quantity <= 0 or fill.price <= 0:
            raise LedgerError(f"fill {trade_id}: price and quantity must be positive")
        # One row lock per strategy and instrument: fills of one book apply in turn.
        position, _ = Position.objects.select_for_update().get_or_create(
            strategy_id=proposal.strategy_id, instrument_id=proposal.instrument_id
        )
        quote = proposal.instrument.quote_asset
        if fill.intent == "close":
            realized = _lots_close(fill=fill, quote=quote)
        else:
            _lot_open(fill=fill, quote=quote)
            realized = None
        _position_sync(position=position)
        payload = {
            "client_order_id": order.client_order_id,
            "trade_id": str(trade_id),
            "strategy": proposal.strategy.slug,
            "symbol": proposal.instrument.symbol,
            "side": order.side,
            "intent": fill.intent,
            "price": decimal_text(fill.price),
            "quantity": decimal_text(fill.quantity),
            "fee": decimal_text(fill.fee),
            "fee_asset": fee_asset,
            "filled_at": fill.filled_at.isoformat(),
            "live": order.live,
            "position_quantity": decimal_text(position.quantity),
        }
        if realized is not None:
            payload["realized"] = {
                "amount": decimal_text(realized.amount),
                "gross": decimal_text(realized.gross),
                "fees": decimal_text(realized.fees),
                "unconverted_fees": realized.unconverted_fees,
                "lots": realized.lots,
            }
        audit_record(kind="fill.recorded", actor=f"venue:{order.venue}", proposal_id=proposal.id, payload=payload)
        return fill


def _lot_open(*, fill: Fill, quote: str) -> Lot:
    # A fee in another asset (e.g. BNB) stays on the fill and is reported by asset;
    # it is never converted at a guessed rate into the lot's quote-currency fee.
    entry_fee = fill.fee if fill.fee_asset == quote else Decimal(0)
    return Lot.objects.create(
        strategy_id=fill.strategy_id,
        instrument_id=fill.instrument_id,
        direction=Lot.Direction.LONG if fill.side == "buy" else Lot.Direction.SHORT,
        fill=fill,
        # Plain texts, as a lot's later writes are: a quantity given as "1E+1" would otherwise
        # scale the position's notional one way in Decimal and another in PostgreSQL's sum.
        entry_price=decimal_text(fill.price),
        quantity=decimal_text(fill.quantity),
        remaining=decimal_text(fill.quantity),
        entry_fee=decimal_text(entry_fee),
        remaining_entry_fee=decimal_text(entry_fee),
        opened_at=fill.filled_at,
    )


def _lots_close(*, fill: Fill, quote: str) -> RealizedPnl:
    """Consume the oldest open lots of the opposite direction; write the realized PnL."""
    direction = Lot.Direction.LONG if fill.side == "sell" else Lot.Direction.SHORT
    lots = list(
        Lot.objects.select_for_update()
        .filter(strategy_id=fill.strategy_id, instrument_id=fill.instrument_id, direction=direction, closed_at__isnull=True)
        .order_by("opened_at", "id")
    )
    open_quantity = sum((lot.remaining for lot in lots), Decimal(0))
    if fill.quantity > open_quantity:
        raise CloseExceedsPosition(
            f"close {fill.side} of {decimal_text(fill.quantity)} exceeds the open {direction} quantity {decimal_text(open_quantity)}"
        )
    to_close, gross, entry_fees, breakdown = fill.quantity, Decimal(0), Decimal(0), []
    for lot in lots:
        if to_close == 0:
            break
        take = min(lot.remaining, to_close)
        if take == lot.remaining:
            fee_share = lot.remaining_entry_fee
        else:
            # normalize: an exact share keeps its plain form (0.1, not 0.100000000000)
            fee_share = (lot.remaining_entry_fee * take / lot.remaining).quantize(FEE_SHARE_STEP).normalize()
        per_unit = fill.price - lot.entry_price if direction == Lot.Direction.LONG else lot.entry_price - fill.price
        gross += per_unit * take
        entry_fees += fee_share
        breakdown.append(
            {"lot": lot.id, "quantity": decimal_text(take), "entry_price": decimal_text(lot.entry_price), "entry_fee": decimal_text(fee_share)}
        )
        lot.remaining = decimal_text(lot.remaining - take)
        lot.remaining_entry_fee = decimal_text(lot.remaining_entry_fee - fee_share)
        if Decimal(lot.remaining) == 0:
            lot.closed_at = fill.filled_at
        lot.save(update_fields=["remaining", "remaining_entry_fee", "closed_at"])
        to_close -= take
    exit_fee = fill.fee if fill.fee_asset == quote else Decimal(0)
    unconverted = {} if fill.fee_asset == quote or fill.fee == 0 else {fill.fee_asset: decimal_text(fill.fee)}
    fees = entry_fees + exit_fee
    realized = RealizedPnl.objects.create(
        fill=fill,
        strategy_id=fill.strategy_id,
        instrument_id=fill.instrument_id,
        date=fill.filled_at.astimezone(dt_timezone.utc).date(),
        quantity=decimal_text(fill.quantity),
        gross=decimal_text(gross),
        fees=decimal_text(fees),
        amount=decimal_text(gross - fees),
        unconverted_fees=unconverted,
        lots=breakdown,
        live=fill.live,
    )
    realized.refresh_from_db()
    return realized


def _position_sync(*, position: Position) -> Position:
    """Position = the open lots: signed quantity and entry notional (Σ remaining × entry price)."""
    key = {"strategy_id": position.strategy_id, "instrument_id": position.instrument_id}
    if connection.vendor == "postgresql":
        quantity, notional = _open_lots_summed_in_database(**key)
    else:
        quantity, notional = Decimal(0), Decimal(0)
        lots = Lot.objects.filter(**key, closed_at__isnull=True).values_list("direction", "remaining", "entry_price")
        for direction, remaining, entry_price in lots:
            quantity += remaining if direction == Lot.Direction.LONG else -remaining
            notional += remaining * entry_price
    texts = decimal_text(quantity), decimal_text(notional)
    position.quantity, position.entry_notional = texts
    position.save(update_fields=["quantity", "entry_notional", "updated_at"])
    position.quantity, position.entry_notional = Decimal(texts[0]), Decimal(texts[1])  # as the database gives them back
    return position


def _open_lots_summed_in_database(*, strategy_id, instrument_id) -> tuple[Decimal, Decimal]:
    """The open lots' signed quantity and entry notional, summed by PostgreSQL: a book keeps
    every lot it opens while exits are disabled, and a fill must not read them all back.
    numeric is exact, and its scales follow Decimal's exponents (a sum keeps the finest scale
    of its terms, a product adds them), so the text is the one a Decimal sum from 0 gives;
    tests/ledger/test_position_sums.py holds the two equal."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT COALESCE(SUM(CASE WHEN direction = %s THEN remaining::numeric ELSE -remaining::numeric END), 0),
                       COALESCE(SUM(remaining::numeric * entry_price::numeric), 0)
                FROM {Lot._meta.db_table}
                WHERE strategy_id = %s AND instrument_id = %s AND closed_at IS NULL""",
            [Lot.Direction.LONG, strategy_id, instrument_id],
        )
        return cursor.fetchone()
