"""The three MPC approval nodes: what each checks, how it signs, how it beats.

A node is a Celery worker consuming its own queue ("risk", "portfolio" or
"execution"), started with CHRONOSX_NODE=<node> and a CHRONOSX_NODE_KEY_DIR that
holds only its own key file. Each node reviews the stored decision independently,
signs its verdict with its own key and records the vote (governance.quorum).
In embedded mode the one process runs all three, each from its own key file.
"""

import logging
import socket
import threading
from decimal import Decimal

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from governance import engine, keys, quorum, selectors
from governance.models import Decision, Node, NodeHeartbeat, Proposal, TradingState, Vote

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_SECONDS = 3
RISK_RULES = ("min_confidence", "signal_age", "slippage", "price_collar")
PORTFOLIO_RULES = ("max_position", "asset_exposure", "strategy_budget", "portfolio_exposure", "max_open_positions")


# --- voting ------------------------------------------------------------------------------


def node_vote(*, proposal_id, node: str) -> Vote | None:
    """Act as `node` on one proposal: review, sign, record. Idempotent: a node that has
    voted returns its vote. Refused (audited) when this process may not sign as `node`."""
    try:
        signer = keys.node_signer(node)
    except (keys.NodeKeyError, ValueError) as exc:
        from django.db import transaction

        with transaction.atomic():
            quorum._refuse(
                proposal_id=proposal_id if Proposal.objects.filter(id=proposal_id).exists() else None,
                node=node,
                why=f"node cannot sign: {exc}",
            )
        return None
    existing = Vote.objects.filter(proposal_id=proposal_id, node=node).first()
    if existing is not None:
        return existing
    proposal = Proposal.objects.select_related("strategy", "instrument").filter(id=proposal_id).first()
    decision = Decision.objects.filter(proposal_id=proposal_id).first() if proposal else None
    if decision is None or decision.outcome == Decision.Outcome.BLOCK:
        return None  # nothing to vote on
    if proposal.status == Proposal.Status.EXPIRED:
        return None
    verdict, reason = node_review(node=node, proposal=proposal, decision=decision)
    # Sign the decision as this node read it: an edited row yields a digest nobody approved.
    digest = quorum.decision_digest_current(decision)
    message = quorum.vote_message(proposal_id=proposal.id, decision_digest=digest, node=node, verdict=verdict, key_id=signer.key_id)
    return quorum.vote_record(
        proposal_id=proposal.id,
        node=node,
        verdict=verdict,
        reason=reason,
        key_id=signer.key_id,
        decision_digest=digest,
        signature=signer.sign(message),
    )


def node_review(*, node: str, proposal: Proposal, decision: Decision) -> tuple[str, str]:
    """(verdict, reason) of `node` on a decision, from the stored inputs and its own reads."""
    problem = quorum.decision_integrity_problem(proposal=proposal, decision=decision)
    if problem:
        return Vote.Verdict.REJECT, f"decision does not verify: {problem}"
    review = {"risk": _risk_review, "portfolio": _portfolio_review, "execution": _execution_review}[node]
    try:
        return review(proposal=proposal, decision=decision)
    except Exception as exc:  # a node that cannot finish its check does not approve
        log.exception("%s review of %s failed", node, proposal.id)
        return Vote.Verdict.REJECT, f"{node} check failed: {type(exc).__name__}: {exc}"


def _reject(reason):
    return Vote.Verdict.REJECT, reason


def _risk_review(*, proposal, decision):
    """Per-proposal rules, recomputed from the stored inputs, and the size actually approved."""
    inputs = decision.inputs
    checks = {c["rule"]: c for c in engine.evaluate(**inputs)["checks"]}
    failed = [f"{rule}: {checks[rule]['detail']}" for rule in RISK_RULES if not checks[rule]["passed"]]
    if failed:
        return _reject("risk rules fail: " + "; ".join(failed))
    rules, instrument = inputs["rules"], inputs["context"]["instrument"]
    quantity = decision.approved_quantity
    requested = Decimal(inputs["proposal"]["quantity"])
    if quantity is None or quantity <= 0 or quantity > requested:
        return _reject(f"approved quantity {quantity} is not within (0, {requested}]")
    step, minimum = Decimal(instrument["quantity_step"]), Decimal(instrument["min_quantity"])
    if quantity % step != 0 or quantity < minimum:
        return _reject(f"approved quantity {quantity} is not a multiple of step {step} at least {minimum}")
    notional = quantity * engine.notional_price(inputs["proposal"])
    limit = Decimal(rules["max_order_notional"])
    if notional > limit:
        return _reject(f"order notional {notional} > maximum {limit}")
    return Vote.Verdict.APPROVE, (
        f"risk rules pass ({', '.join(RISK_RULES)}); order notional {engine.fmt(notional)} <= maximum {engine.fmt(limit)}"
    )


def _portfolio_review(*, proposal, decision):
    """Exposure re-read from the ledger now, with the approved quantity added."""
    context = selectors.decision_context(proposal=proposal, trading_enabled=True, trading_reason="")
    sized = {**decision.inputs["proposal"], "quantity": str(decision.approved_quantity)}
    checks = {c["rule"]: c for c in engine.evaluate(proposal=sized, context=context, rules=decision.inputs["rules"])["checks"]}
    failed = [f"{rule}: {checks[rule]['detail']}" for rule in PORTFOLIO_RULES if not checks[rule]["passed"]]
    if failed:
        return _reject("exposure re-read from the ledger exceeds limits: " + "; ".join(failed))
    return Vote.Verdict.APPROVE, (
        f"exposure re-read from the ledger within limits for {decision.approved_quantity}: "
        + "; ".join(checks[rule]["detail"] for rule in ("asset_exposure", "strategy_budget", "portfolio_exposure"))
    )


def _execution_review(*, proposal, decision):
    """The state of trading right now: the switch, the breakers, the instrument, the venue."""
    state = TradingState.objects.filter(pk=1).first()
    if state is None or not state.enabled:
        return _reject(f"trading is halted: {state.reason if state else 'never enabled'}")
    tripped = selectors.breakers_tripped()
    if tripped:
        return _reject("circuit breaker tripped: " + ", ".join(tripped))
    if not proposal.instrument.enabled:
        return _reject(f"{proposal.instrument.symbol} is disabled")
    healthy, detail = venue_health()
    if not healthy:
        return _reject(f"venue unhealthy: {detail}")
    return Vote.Verdict.APPROVE, f"trading enabled, no breaker tripped, venue healthy ({detail})"


def venue_health() -> tuple[bool, str]:
    """The one place the execution node asks the exchange layer about the venue.

    Uses exchange.venues.venue_health() when it exists (returning a bool, a
    (bool, detail) pair, or a dict with "healthy"/"ok"); until then the venue counts
    as healthy.
    """
    try:
        from exchange import venues
    except ImportError:
        return True, "venue health not reported"
    probe = getattr(venues, "venue_health", None)
    if probe is None:
        return True, "venue health not reported"
    try:
        answer = probe()
    except Exception as exc:
        return False, f"venue health check failed: {type(exc).__name__}: {exc}"
    if isinstance(answer, tuple):
        return bool(answer[0]), str(answer[1]) if len(answer) > 1 else ""
    if isinstance(answer, dict):
        healthy = answer.get("healthy", answer.get("ok", answer.get("status") in ("ok", "healthy")))
        return bool(healthy), str(answer.get("detail") or answer.get("reason") or answer.get("status") or "")
    return bool(answer), "venue reports healthy" if answer else "venue reports unhealthy"


# --- heartbeats ------------------------------------------------------------------------


def node_heartbeat(*, node: str, key_id: str = "", host: str = "") -> NodeHeartbeat:
    beat, _ = NodeHeartbeat.objects.update_or_create(
        node=node, defaults={"last_heartbeat": timezone.now(), "key_id": key_id, "host": host or socket.gethostname()}
    )
    return beat


def embedded_heartbeat():
    """Embedded mode: beat for each in-process node whose key file loads."""
    if not settings.EMBEDDED_TASKS or settings.CHRONOSX_NODE:
        return
    for node in Node.values:
        try:
            signer = keys.node_signer(node)
        except keys.NodeKeyError:
            continue  # no key, no votes: the node is down
        node_heartbeat(node=node, key_id=signer.key_id)


def node_beat_once(node: str) -> bool:
    """One heartbeat of a node process, only while its own key loads."""
    try:
        signer = keys.node_signer(node)
        node_heartbeat(node=node, key_id=signer.key_id)
        return True
    except Exception:
        log.exception("node %s: heartbeat failed", node)
        return False
    finally:
        # Keep no connection open between beats (the prefork pool forks from this process).
        connections.close_all()


_stop_beating = threading.Event()


def _beat_loop(node: str):
    while not _stop_beating.is_set():
        node_beat_once(node)
        _stop_beating.wait(HEARTBEAT_INTERVAL_SECONDS)


@worker_ready.connect
def _node_worker_ready(sender=None, **kwargs):
    node = settings.CHRONOSX_NODE
    if not node:
        return
    if node not in Node.values:
        log.error("CHRONOSX_NODE=%r is not a node (%s); this worker will not beat", node, ", ".join(Node.values))
        return
    try:
        signer = keys.node_signer(node)
        log.info("MPC node %s ready with key %s from %s", node, signer.key_id, settings.CHRONOSX_NODE_KEY_DIR)
    except keys.NodeKeyError as exc:
        log.error("MPC node %s cannot load its key: %s (it beats once the key is there)", node, exc)
    close_old_connections()
    _stop_beating.clear()
    threading.Thread(target=_beat_loop, args=(node,), name=f"chronosx-heartbeat-{node}", daemon=True).start()


@worker_shutdown.connect
def _node_worker_shutdown(sender=None, **kwargs):
    _stop_beating.set()
