"""The audit chain's state as `verify_audit` finds it, for the exports' headers and the admin."""

from dataclasses import dataclass

from governance.checkpoints import checkpoint_dir, checkpoints_load
from ledger.selectors import audit_chain_head, audit_chain_verify, audit_unchained_count


@dataclass(frozen=True)
class ChainStatus:
    ok: bool
    outcome: str  # "ok", "broken", "rewritten", "truncated", or "checkpoint" (a checkpoint file fails)
    events: int  # events that verified
    head_seq: int  # the newest chained event (0: none)
    head_hash: str  # what `verify_audit --show-head` prints when the chain verifies
    unchained: int  # written by transactions the sequencer has not linked yet
    checkpoints: int  # node checkpoints matched
    summary: str  # one line, as a person reads it

def audit_chain_status(*, chunk_size: int = 5000, on_progress=None) -> ChainStatus:
    """Walk the whole chain against the nodes' signed checkpoints (checkpoint_dir()),
    exactly as `verify_audit` does (which also links committed events first: this only reads).
    `on_progress(count)`: called after every `chunk_size` events verified."""
    verified, problems = checkpoints_load(directories=[checkpoint_dir()])
    report = audit_chain_verify(
        chunk_size=chunk_size, checkpoints=[c.chain_checkpoint for c in verified], on_progress=on_progress
    )
    head = audit_chain_head()
    head_seq = report.count if report.ok else (head[0] if head else 0)
    unchained = audit_unchained_count()
    if report.outcome == "broken":
        summary = (
            f"BROKEN at seq {report.broken_seq} (kind {report.broken_kind}): {report.reason}; "
            f"{report.count} events before it verify"
        )
    elif not report.ok:
        summary = f"{report.outcome.upper()}: {report.reason}"
    elif problems:
        summary = f"CHECKPOINT FAILS: {'; '.join(problems)}"
    else:
        summary = f"OK: {report.count} events verify"
        if report.checkpoint is not None:
            summary += f"; {report.checkpoints_matched} node checkpoints match, newest seq {report.checkpoint.seq}"
    if unchained:
        summary += f" ({unchained} event{'s' if unchained != 1 else ''} of open transactions not yet chained)"
    ok = report.ok and not problems
    return ChainStatus(
        ok=ok,
        outcome=report.outcome if not report.ok else ("ok" if ok else "checkpoint"),
        events=report.count,
        head_seq=head_seq,
        head_hash=report.head_hash,
        unchained=unchained,
        checkpoints=report.checkpoints_matched,
        summary=summary,
    )
