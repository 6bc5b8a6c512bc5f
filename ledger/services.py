from django.db import connection, transaction
from django.utils import timezone

from chronosx.canonical import canonical_json, sha256_hex
from ledger.models import AuditEvent

GENESIS_HASH = "0" * 64
# Any constant: the advisory lock that serializes appends so the chain never forks.
AUDIT_CHAIN_LOCK = 7_345_001


def audit_event_hash(*, seq, kind, actor, created_at, proposal_id, payload, prev_hash) -> str:
    header = canonical_json(
        {"seq": seq, "kind": kind, "actor": actor, "created_at": created_at, "proposal_id": proposal_id}
    )
    return sha256_hex(prev_hash + "\n" + header + "\n" + payload)


@transaction.atomic
def audit_record(*, kind: str, actor: str, payload: dict, proposal_id=None) -> AuditEvent:
    """Append one event to the hash chain, inside the caller's transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK])
    last = AuditEvent.objects.order_by("-seq").only("seq", "hash").first()
    seq = last.seq + 1 if last else 1
    prev_hash = last.hash if last else GENESIS_HASH
    created_at = timezone.now().isoformat()
    proposal_id = str(proposal_id) if proposal_id else None
    text = canonical_json(payload)
    event_hash = audit_event_hash(
        seq=seq, kind=kind, actor=actor, created_at=created_at, proposal_id=proposal_id, payload=text, prev_hash=prev_hash
    )
    return AuditEvent.objects.create(
        seq=seq,
        kind=kind,
        actor=actor,
        created_at=created_at,
        proposal_id=proposal_id,
        payload=text,
        prev_hash=prev_hash,
        hash=event_hash,
    )


def fill_record(*, order, trade_id: str, price, quantity, fee, fee_asset: str, filled_at):
    """Store one venue fill, once: a fill seen again (same venue trade id) changes nothing.

    Returns the new Fill, or None when it was already recorded. Updates the position
    in the same transaction. (Simple entry-price accounting; FIFO lots replace it.)
    """
    from decimal import Decimal

    from django.db import IntegrityError

    from ledger.models import Fill, Position

    proposal = order.proposal
    with transaction.atomic():
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
        position, _ = Position.objects.select_for_update().get_or_create(
            strategy_id=proposal.strategy_id, instrument_id=proposal.instrument_id
        )
        sign = Decimal(1) if order.side == "buy" else Decimal(-1)
        position.quantity += sign * Decimal(quantity)
        position.entry_notional += Decimal(quantity) * Decimal(price)
        position.save()
        audit_record(
            kind="fill.recorded",
            actor=f"venue:{order.venue}",
            proposal_id=proposal.id,
            payload={
                "client_order_id": order.client_order_id,
                "trade_id": str(trade_id),
                "price": str(price),
                "quantity": str(quantity),
                "fee": str(fee),
                "fee_asset": fee_asset,
                "filled_at": filled_at.isoformat(),
                "live": order.live,
            },
        )
        return fill
