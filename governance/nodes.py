"""The three MPC approval nodes: what each reviews, how it signs, how it beats.

A node is a Celery worker consuming its own queue ("risk", "portfolio" or
"execution"), started with CHRONOSX_NODE=<node> and a CHRONOSX_NODE_KEY_DIR that
holds only its own key file. Each node reviews the stored decision independently,
signs its verdict with its own key and records the vote (governance.services.quorum).
Which rules each node reviews comes from the engine's table (engine.rules_reviewed_by).
In embedded mode the one process runs all three, each from its own key file.
"""

import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, OuterRef

from governance import engine, keys
from governance.digests import decision_row_digest, force_row_digest, vote_message
from governance.models import Decision, ForceRequest, Node, Proposal, TradingState, Vote
from governance.selectors.context import decision_context
from governance.selectors.controls import controls_context_now, venue_health_latest
from governance.selectors.forcing import force_record, force_record_problem, force_trading_refusal
from governance.selectors.quorum import DECISION_CHECK_RELATED, decision_integrity_problem
from governance.services.heartbeats import worker_heartbeat
from governance.services.quorum import vote_record, vote_refuse

log = logging.getLogger(__name__)

# --- voting ------------------------------------------------------------------------------


def node_vote(*, proposal_id, node: str) -> Vote | None:
    """Act as `node` on one proposal: review, sign, record. Idempotent: a node that has
    voted returns its vote. Refused (audited) when this process may not sign as `node`."""
    try:
        signer = keys.node_signer(node)
    except (keys.NodeKeyError, ValueError) as exc:
        with transaction.atomic():
            vote_refuse(
                proposal_id=proposal_id if Proposal.objects.filter(id=proposal_id).exists() else None,
                node=node,
                why=f"node cannot sign: {exc}",
            )
        return None
    # The decision and its ruleset come with the proposal, and whether this node has voted:
    # one read for what the review checks.
    proposal = (
        Proposal.objects.select_related(*DECISION_CHECK_RELATED)
        .annotate(voted=Exists(Vote.objects.filter(proposal_id=OuterRef("pk"), node=node)))
        .filter(id=proposal_id)
        .first()
    )
    if proposal is not None and proposal.voted:
        return Vote.objects.get(proposal_id=proposal_id, node=node)
    decision = getattr(proposal, "decision", None)
    if decision is None:
        return None  # nothing to vote on
    # A blocked decision is voted on only under a force record (force-execute, two keys).
    force = force_record(proposal_id=proposal_id) if decision.outcome == Decision.Outcome.BLOCK else None
    if decision.outcome == Decision.Outcome.BLOCK and force is None:
        return None
    if proposal.status == Proposal.Status.EXPIRED:
        return None
    verdict, reason = node_review(node=node, proposal=proposal, decision=decision, force=force)
    # Sign the decision (and the force record) as this node read them: an edited row yields
    # a digest nobody approved.
    digest = decision_row_digest(decision)
    forced = force_row_digest(force) if force is not None else ""
    message = vote_message(
        proposal_id=proposal.id, decision_digest=digest, node=node, verdict=verdict, key_id=signer.key_id, force_digest=forced
    )
    return vote_record(
        proposal_id=proposal.id,
        node=node,
        verdict=verdict,
        reason=reason,
        key_id=signer.key_id,
        decision_digest=digest,
        force_digest=forced,
        signature=signer.sign(message),
    )


def node_review(*, node: str, proposal: Proposal, decision: Decision, force: ForceRequest | None = None) -> tuple[str, str]:
    """(verdict, reason) of `node` on a decision, from the stored inputs and its own reads.
    With a force record, the node first verifies the record; its own rules may then fail only
    where the record overrides them, and never where the ruleset marks them hard."""
    problem = decision_integrity_problem(proposal=proposal, decision=decision)
    if problem:
        return Vote.Verdict.REJECT, f"decision does not verify: {problem}"
    if force is not None:
        problem = force_record_problem(proposal=proposal, decision=decision, force=force)
        if problem:
            return Vote.Verdict.REJECT, f"force record does not verify: {problem}"
        trading = force_trading_refusal()
        if trading:
            return Vote.Verdict.REJECT, f"no force goes on now: {trading}"
    review = {Node.RISK: _risk_review, Node.PORTFOLIO: _portfolio_review, Node.EXECUTION: _execution_review}[node]
    try:
        verdict, reason = review(proposal=proposal, decision=decision, force=force)
    except Exception as exc:  # a node that cannot finish its check does not approve
        log.exception("%s review of %s failed", node, proposal.id)
        return Vote.Verdict.REJECT, f"{node} check failed: {type(exc).__name__}: {exc}"
    if force is not None and verdict == Vote.Verdict.APPROVE:
        overridden = ", ".join(force.overrides)
        reason = f"{reason}; force-execute requested by {force.requested_by}, approved by {force.approved_by}, overrides {overridden}"
    return verdict, reason


def _reject(reason):
    return Vote.Verdict.REJECT, reason


def _quantity(decision: Decision, force) -> Decimal | None:
    """The size the order would have: what governance approved (a `modify` cut it down), or
    under a force record the size proposed."""
    return Decimal(decision.inputs["proposal"]["quantity"]) if force is not None else decision.approved_quantity


def _sized(decision: Decision, force=None) -> dict:
    return {**decision.inputs["proposal"], "quantity": str(_quantity(decision, force))}


def _failed(node: str, checks: list[dict], force=None, rules=None) -> list[str]:
    """This node's rules that fail, less those a force record overrides (never a hard one)."""
    reviewed = engine.rules_reviewed_by(node)
    overridden = set(force.overrides) - set(engine.force_hard_rules(rules)) if force is not None else set()
    return [f"{c['rule']}: {c['detail']}" for c in checks if c["rule"] in reviewed and not c["passed"] and c["rule"] not in overridden]


def _risk_review(*, proposal, decision, force=None):
    """Its rules, recomputed from the stored inputs at the approved size, and that size itself."""
    inputs = decision.inputs
    instrument = inputs["context"]["instrument"]
    quantity = _quantity(decision, force)
    requested = Decimal(inputs["proposal"]["quantity"])
    if quantity is None or quantity <= 0 or quantity > requested:
        return _reject(f"approved quantity {quantity} is not within (0, {requested}]")
    step, minimum = Decimal(instrument["quantity_step"]), Decimal(instrument["min_quantity"])
    if quantity % step != 0 or quantity < minimum:
        return _reject(f"approved quantity {quantity} is not a multiple of step {step} at least {minimum}")
    checks = engine.evaluate(proposal=_sized(decision, force), context=inputs["context"], rules=inputs["rules"])["checks"]
    failed = _failed(Node.RISK, checks, force, inputs["rules"])
    if failed:
        return _reject("risk rules fail: " + "; ".join(failed))
    notional = next(c["detail"] for c in checks if c["rule"] == "max_order_notional")
    return Vote.Verdict.APPROVE, f"risk rules pass ({', '.join(engine.rules_reviewed_by(Node.RISK))}); {notional}"


def _portfolio_review(*, proposal, decision, force=None):
    """Exposure re-read from the ledger now, with the approved quantity added."""
    rules = decision.inputs["rules"]
    context = decision_context(proposal=proposal, trading_state=TradingState.State.ENABLED, trading_reason="", rules=rules)
    checks = engine.evaluate(proposal=_sized(decision, force), context=context, rules=rules)["checks"]
    failed = _failed(Node.PORTFOLIO, checks, force, rules)
    if failed:
        return _reject("exposure re-read from the ledger exceeds limits: " + "; ".join(failed))
    return Vote.Verdict.APPROVE, (
        f"exposure re-read from the ledger within limits for {_quantity(decision, force)}: "
        + "; ".join(c["detail"] for c in checks if c["rule"] in ("asset_exposure", "strategy_budget", "portfolio_exposure"))
    )


def _execution_review(*, proposal, decision, force=None):
    """The controls as they are right now (the trading state, the pauses, the breakers, the
    instrument), and the venue's health as the router last measured it."""
    context = controls_context_now(context=decision.inputs["context"], proposal=proposal)
    rules = decision.inputs["rules"]
    checks = engine.evaluate(proposal=_sized(decision, force), context=context, rules=rules)["checks"]
    failed = _failed(Node.EXECUTION, checks, force, rules)
    if failed:
        return _reject("execution rules fail: " + "; ".join(failed))
    healthy, detail = venue_health_latest()
    if not healthy:
        return _reject(f"venue unhealthy: {detail}")
    return Vote.Verdict.APPROVE, f"trading {context['trading_state']}, no breaker tripped, venue healthy ({detail})"


# --- heartbeats ------------------------------------------------------------------------


def node_beat(node: str) -> bool:
    """A node's heartbeat, only while this process may load its key and the key loads."""
    try:
        signer = keys.node_signer(node)
    except keys.NodeKeyError:
        return False  # no key, no votes: the node is down
    worker_heartbeat(kind=node, key_id=signer.key_id)
    return True
