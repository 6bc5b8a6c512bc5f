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
