"""Decision replay: recompute a stored decision and say, field by field, where it differs.

`decision_compare` is pure (plain data in, a list of differences out). The loaders
around it fetch what a replay needs: the decision row, the parameters its ruleset
version froze at publish, the proposal row as it is now, and the digest that the
audit chain recorded when the decision was made.
"""

import json
from itertools import islice

from governance import engine
from governance.digests import decision_digest
from governance.models import Decision
from governance.selectors.proposals import proposal_engine_input
from ledger.models import AuditEvent


def _show(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _dict_differences(path: str, left, right, left_name: str, right_name: str) -> list[str]:
    """Paths where two JSON-like values differ, leaf by leaf."""
    if isinstance(left, dict) and isinstance(right, dict):
        out = []
        for key in sorted(set(left) | set(right), key=str):
            if key not in left:
                out.append(f"{path}.{key}: missing in {left_name}, {right_name} {_show(right[key])}")
            elif key not in right:
                out.append(f"{path}.{key}: {left_name} {_show(left[key])}, missing in {right_name}")
            else:
                out.extend(_dict_differences(f"{path}.{key}", left[key], right[key], left_name, right_name))
        return out
    if left != right or type(left) is not type(right):
        return [f"{path}: {left_name} {_show(left)}, {right_name} {_show(right)}"]
    return []


def _quantity(value) -> str | None:
    return None if value is None else str(value)


def decision_compare(
    *, stored: dict, ruleset_version: int, ruleset_params: dict | None, proposal_now: dict | None, audited_digests: list[str]
) -> list[str]:
    """Everything about a stored decision that its replay does not confirm; [] means identical.

    stored: proposal_id, outcome, approved_quantity, ruleset_version, checks, inputs, digest
      (the Decision row). ruleset_version/ruleset_params: the version the row points to
      and what it froze at publish. proposal_now: the proposal row's engine input today.
      audited_digests: the digests of the proposal's `decision.made` audit events.
    """
    differences = []
    inputs = stored["inputs"] if isinstance(stored["inputs"], dict) else {}

    # 1. The decision used exactly the ruleset version it names.
    if stored["ruleset_version"] != ruleset_version:
        differences.append(f"ruleset_version: stored {stored['ruleset_version']}, the ruleset row is v{ruleset_version}")
    if ruleset_params is None:
        differences.append(f"ruleset: v{ruleset_version} has no frozen parameters (never published)")
        return differences
    differences += _dict_differences(
        "inputs.rules", inputs.get("rules"), ruleset_params, "decision used", f"ruleset v{ruleset_version} holds"
    )

    # 2. The proposal it decided is the proposal on file.
    if proposal_now is not None:
        differences += _dict_differences(
            "inputs.proposal", inputs.get("proposal"), proposal_now, "decided on", "proposal row now"
        )

    # 3. The engine, given the same inputs and the stored version's rules, says the same.
    try:
        replayed = engine.evaluate(proposal=inputs["proposal"], context=inputs["context"], rules=ruleset_params)
    except Exception as exc:  # any malformed stored input is a difference, not a crash
        differences.append(f"replay: the engine could not evaluate the stored inputs ({type(exc).__name__}: {exc})")
        replayed = None
    if replayed is not None:
        if stored["outcome"] != replayed["outcome"]:
            differences.append(f"outcome: stored {_show(stored['outcome'])}, replayed {_show(replayed['outcome'])}")
        stored_qty, replayed_qty = _quantity(stored["approved_quantity"]), _quantity(replayed["approved_quantity"])
        if stored_qty != replayed_qty:
            differences.append(f"approved_quantity: stored {_show(stored_qty)}, replayed {_show(replayed_qty)}")
        differences += _checks_differences(stored["checks"], replayed["checks"])

    # 4. The row is internally consistent: its digest covers exactly its fields…
    recomputed = decision_digest(
        proposal_id=stored["proposal_id"],
        outcome=stored["outcome"],
        approved_quantity=stored["approved_quantity"],
        ruleset_version=stored["ruleset_version"],
        checks=stored["checks"],
        inputs=stored["inputs"],
    )
    if recomputed != stored["digest"]:
        differences.append(f"digest: stored {stored['digest']}, recomputed from the stored fields {recomputed}")
    # 5. …and it is the digest the tamper-evident audit trail recorded at the time.
    if not audited_digests:
        differences.append("audit: no decision.made event records this decision")
    elif any(d != stored["digest"] for d in audited_digests):
        differences.append(f"digest: stored {stored['digest']}, audited {', '.join(sorted(set(audited_digests)))}")
    return differences


def _checks_differences(stored, replayed) -> list[str]:
    if not isinstance(stored, list):
        return [f"checks: stored {_show(stored)} is not a list of checks"]
    out = []
    stored_rules = [c.get("rule") if isinstance(c, dict) else None for c in stored]
    replayed_rules = [c["rule"] for c in replayed]
    if stored_rules != replayed_rules:
        out.append(f"checks: stored rules {_show(stored_rules)}, replayed {_show(replayed_rules)}")
    replayed_by_rule = {c["rule"]: c for c in replayed}
    for check in stored:
        if not isinstance(check, dict) or check.get("rule") not in replayed_by_rule:
            continue
        other = replayed_by_rule[check["rule"]]
        for field in sorted(set(check) | set(other)):
            if check.get(field) != other.get(field):
                out.append(
                    f"checks[{check['rule']}].{field}: stored {_show(check.get(field))}, replayed {_show(other.get(field))}"
                )
    return out


def _stored(decision: Decision) -> dict:
    return {
        "proposal_id": decision.proposal_id,
        "outcome": decision.outcome,
        "approved_quantity": decision.approved_quantity,
        "ruleset_version": decision.ruleset_version,
        "checks": decision.checks,
        "inputs": decision.inputs,
        "digest": decision.digest,
    }


def _audited_digests(proposal_ids) -> dict:
    found = {}
    events = AuditEvent.objects.filter(kind="decision.made", proposal_id__in=list(proposal_ids)).values_list(
        "proposal_id", "payload"
    )
    for proposal_id, payload in events:
        found.setdefault(proposal_id, []).append(json.loads(payload).get("digest"))
    return found


def _compare(decision: Decision, audited: dict) -> list[str]:
    return decision_compare(
        stored=_stored(decision),
        ruleset_version=decision.ruleset.version,
        ruleset_params=decision.ruleset.params,
        proposal_now=proposal_engine_input(proposal=decision.proposal),
        audited_digests=audited.get(decision.proposal_id, []),
    )


def decision_replay(*, decision: Decision) -> list[str]:
    """Replay one decision: [] when identical, else the differences."""
    return _compare(decision, _audited_digests([decision.proposal_id]))


def decisions_replay(*, since=None, until=None, chunk_size: int = 500):
    """Replay every decision made in [since, until), oldest first: yields (decision, differences)."""
    qs = Decision.objects.select_related("ruleset", "proposal__strategy", "proposal__instrument").order_by(
        "decided_at", "proposal_id"
    )
    if since is not None:
        qs = qs.filter(decided_at__gte=since)
    if until is not None:
        qs = qs.filter(decided_at__lt=until)
    rows = qs.iterator(chunk_size=chunk_size)
    while chunk := list(islice(rows, chunk_size)):
        audited = _audited_digests(d.proposal_id for d in chunk)
        for decision in chunk:
            yield decision, _compare(decision, audited)
