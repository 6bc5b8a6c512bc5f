"""The agent-facing events (GET /api/v1/stream/), read from the audit trail once the sequencer
has chained them: `seq` is then final, gap-free and in commit order, so it serves as the
event id, and a stream resumed after id N misses and repeats nothing."""

import json

from governance.models import Proposal
from ledger.models import AuditEvent

# The audit kinds an agent sees, by the SSE event type they are sent as.
STREAM_KIND_PREFIXES = {"proposal.": "proposal", "decision.": "decision", "vote.": "vote", "order.": "order", "fill.": "fill"}
# What a decision event leaves out: its inputs hold the whole portfolio's context and the ruleset.
DECISION_PRIVATE = ("inputs",)


def stream_type(kind: str) -> str | None:
    return next((name for prefix, name in STREAM_KIND_PREFIXES.items() if kind.startswith(prefix)), None)


def events_after(*, seq: int, limit: int) -> tuple[list[dict], int]:
    """Chained events of proposals after `seq`, oldest first, each with its proposal's strategy id;
    and the last seq read (events of other kinds included), where the next read starts."""
    rows = list(
        AuditEvent.objects.filter(seq__gt=seq, proposal_id__isnull=False)
        .order_by("seq")
        .values("seq", "kind", "created_at", "proposal_id", "payload")[:limit]
    )
    events = [row for row in rows if stream_type(row["kind"])]
    strategies = dict(
        Proposal.objects.filter(id__in={row["proposal_id"] for row in events}).values_list("id", "strategy_id")
    )
    for row in events:
        row["strategy_id"] = strategies.get(row["proposal_id"])
    return events, (rows[-1]["seq"] if rows else seq)


def chain_head_seq() -> int:
    return AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", flat=True).first() or 0


def event_data(row: dict) -> dict:
    payload = json.loads(row["payload"])
    if stream_type(row["kind"]) == "decision":
        payload = {k: v for k, v in payload.items() if k not in DECISION_PRIVATE}
    return {**payload, "proposal_id": str(row["proposal_id"]), "kind": row["kind"], "at": row["created_at"].isoformat()}


def agent_strategy_ids(*, agent) -> set | None:
    """The strategies whose events the agent sees; None: all (a staff token)."""
    if getattr(agent, "is_staff", False):
        return None
    return set(agent.strategies.values_list("id", flat=True))
