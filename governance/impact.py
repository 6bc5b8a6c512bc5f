"""Impact replay: what a ruleset version would have decided on recorded history.

Plain data in, plain data out, and nothing of Django, so that worker processes can run it
(governance/services/impact.py loads the stored decisions and keeps the report):

1. Each stored decision's proposal and context (exactly what the engine was given then) are
   evaluated again by the pure engine, with the draft's params instead of the stored version's.
2. The new decision is compared with the stored one: a changed outcome is a transition
   (`approve->block`, `block->approve`, …); a `modify` whose approved quantity moved is
   `modify->modify`. Nothing else counts as a change.
3. For a changed decision, `by_rule` counts every rule whose verdict flipped (passed in one,
   failed in the other; a rule the stored decision did not have counts as passed there).
   A modify whose size alone moved flips no rule: it counts the rules that failed in the new
   decision and whose detail changed (the caps that cut it to another size).
4. A stored decision that cannot be evaluated again (malformed or missing inputs) is listed
   under `errors`, never a crash, and is not counted as evaluated.

With `workers` > 1 the chunks are evaluated by a pool of processes, which the caller feeds
from its own thread, a bounded number of chunks ahead; results are taken in order.
"""

import json
import logging
import multiprocessing
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from governance import engine

log = logging.getLogger(__name__)

# The outcome transitions a report counts, always all of them (0 when none).
TRANSITIONS = (
    "approve->block",
    "approve->modify",
    "modify->approve",
    "modify->block",
    "block->approve",
    "block->modify",
    "modify->modify",  # still modify, another approved quantity
)

# One stored decision: (proposal id, decided_at, outcome, approved quantity text or None,
# the proposal as JSON text, the context as JSON text, the checks as JSON text).
Row = tuple


def transition(*, stored_outcome: str, stored_quantity, replayed: dict) -> str | None:
    """How the replayed decision differs from the stored one (a TRANSITIONS name), or None."""
    if stored_outcome != replayed["outcome"]:
        return f"{stored_outcome}->{replayed['outcome']}"
    if stored_outcome == "modify" and _quantity(stored_quantity) != _quantity(replayed["approved_quantity"]):
        return "modify->modify"
    return None


def _quantity(value):
    """By value: "0.0050" and "0.005" are the same quantity."""
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        return str(value)


def rules_changed(stored_checks, replayed_checks: list) -> list[str]:
    """The rules a change is counted under (step 3 above)."""
    stored = {c.get("rule"): c for c in stored_checks if isinstance(c, dict)} if isinstance(stored_checks, list) else {}
    flipped = [c["rule"] for c in replayed_checks if bool(stored.get(c["rule"], {}).get("passed", True)) != c["passed"]]
    if flipped:
        return flipped
    return [c["rule"] for c in replayed_checks if not c["passed"] and stored.get(c["rule"], {}).get("detail") != c["detail"]]


@dataclass
class ChunkResult:
    evaluated: int = 0
    # (decided_at, proposal id, strategy, transition, rules)
    changes: list = field(default_factory=list)
    # (decided_at, proposal id, why it could not be evaluated)
    errors: list = field(default_factory=list)


def _id_text(proposal_id: str) -> str:
    """A proposal id as the API writes it: SQLite gives the column's text without dashes.
    Anything else is reported as it was read."""
    try:
        return str(uuid.UUID(proposal_id))
    except (TypeError, ValueError):
        return proposal_id


def evaluate_chunk(rules: dict, rows: Iterable[Row]) -> ChunkResult:
    """Steps 1 to 4 for a chunk of stored decisions."""
    result = ChunkResult()
    for proposal_id, decided_at, outcome, quantity, proposal_json, context_json, checks_json in rows:
        try:
            proposal = json.loads(proposal_json)
            replayed = engine.evaluate(proposal=proposal, context=json.loads(context_json), rules=rules)
        except Exception as exc:  # any malformed stored input is reported, not a crash
            result.errors.append((decided_at, _id_text(proposal_id), f"{type(exc).__name__}: {exc}"))
            continue
        result.evaluated += 1
        moved = transition(stored_outcome=outcome, stored_quantity=quantity, replayed=replayed)
        if moved is None:
            continue
        try:
            stored_checks = json.loads(checks_json) if checks_json else []
        except (TypeError, ValueError):
            stored_checks = []
        result.changes.append(
            (decided_at, _id_text(proposal_id), str(proposal.get("strategy")), moved, rules_changed(stored_checks, replayed["checks"]))
        )
    return result


@dataclass
class ImpactTally:
    evaluated: int = 0
    transitions: Counter = field(default_factory=Counter)
    by_rule: Counter = field(default_factory=Counter)
    by_strategy: Counter = field(default_factory=Counter)
    changed: list = field(default_factory=list)  # (decided_at, proposal id)
    errors: list = field(default_factory=list)  # (decided_at, proposal id, why)

    @property
    def seen(self) -> int:
        return self.evaluated + len(self.errors)

    def add(self, chunk: ChunkResult) -> None:
        self.evaluated += chunk.evaluated
        self.errors.extend(chunk.errors)
        for decided_at, proposal_id, strategy, moved, rules in chunk.changes:
            self.transitions[moved] += 1
            self.by_strategy[strategy] += 1
            self.by_rule.update(rules)
            self.changed.append((decided_at, proposal_id))

    def report(self) -> dict:
        """The `ruleset impact` JSON: counts, and the changed proposals oldest decision first."""
        order = {name: i for i, name in enumerate(engine.CHECK_ORDER)}
        return {
            "evaluated": self.evaluated,
            "changed": len(self.changed),
            "transitions": {name: self.transitions[name] for name in TRANSITIONS},
            "by_rule": {r: self.by_rule[r] for r in sorted(self.by_rule, key=lambda r: (order.get(r, len(order)), r))},
            "by_strategy": dict(sorted(self.by_strategy.items())),
            "proposals": [proposal_id for _, proposal_id in sorted(self.changed)],
            "errors": [{"proposal": pid, "error": why} for _, pid, why in sorted(self.errors)],
        }


# --- in worker processes ----------------------------------------------------------------

_worker_rules: dict | None = None


def _worker_init(rules: dict) -> None:
    global _worker_rules
    _worker_rules = rules


def _worker_evaluate(rows: list) -> ChunkResult:
    return evaluate_chunk(_worker_rules, rows)


def impact_replay(
    *, rules: dict, chunks: Iterable[list], workers: int = 0, on_progress: Callable[[int], None] | None = None
) -> ImpactTally:
    """Evaluate every chunk against `rules`, in this process or (workers > 1) in a pool of
    processes; `on_progress(decisions seen)` after each chunk. The chunks are read here, in
    the caller's thread (a database cursor stays in its own thread)."""
    tally = ImpactTally()
    progress = on_progress or (lambda seen: None)
    pool = None
    if workers > 1:
        try:
            # spawn: a fresh interpreter that imports only this module and the engine, and
            # inherits no database connection or lock of the caller's.
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(rules,))
        except (AssertionError, OSError) as exc:  # e.g. a daemonic process may not have children
            log.warning("impact replay: no worker pool (%s); replaying in this process", exc)
    if pool is None:
        for rows in chunks:
            tally.add(evaluate_chunk(rules, rows))
            progress(tally.seen)
        return tally
    with pool:
        pending = deque()
        for rows in chunks:
            pending.append(pool.apply_async(_worker_evaluate, (rows,)))
            while len(pending) > 2 * workers:  # a bounded number of chunks in flight
                tally.add(pending.popleft().get())
                progress(tally.seen)
        while pending:
            tally.add(pending.popleft().get())
            progress(tally.seen)
    return tally
