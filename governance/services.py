import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from chronosx.api import IdempotencyConflict
from chronosx.canonical import canonical_json, sha256_hex
from governance import engine, selectors
from governance.auth import hash_token
from governance.models import (
    Agent,
    AssetLimit,
    CircuitBreaker,
    Decision,
    Proposal,
    Ruleset,
    Strategy,
    StrategyBudget,
    TradingState,
)
from ledger.services import audit_record

SYSTEM = "system"


# --- agents -----------------------------------------------------------------


@transaction.atomic
def agent_create(*, name: str, strategy_slugs: list[str], actor: str = SYSTEM) -> tuple[Agent, str]:
    """Create an agent bound to strategies (made if missing). Returns the agent and its token, shown once."""
    token = "cx_" + secrets.token_urlsafe(32)
    agent = Agent.objects.create(name=name, token_hash=hash_token(token), token_prefix=token[:10])
    strategies = [Strategy.objects.get_or_create(slug=slug, defaults={"name": slug})[0] for slug in strategy_slugs]
    agent.strategies.set(strategies)
    audit_record(kind="agent.created", actor=actor, payload={"agent": name, "strategies": sorted(strategy_slugs)})
    return agent, token


# --- trading state and breakers ----------------------------------------------


def trading_state_locked() -> TradingState:
    state, _ = TradingState.objects.select_for_update().get_or_create(pk=1)
    return state


@transaction.atomic
def trading_set(*, enabled: bool, actor: str, reason: str) -> TradingState:
    state = trading_state_locked()
    previous = state.enabled
    state.enabled, state.reason, state.changed_by, state.changed_at = enabled, reason, actor, timezone.now()
    state.save()
    audit_record(
        kind="trading.enabled" if enabled else "trading.halted",
        actor=actor,
        payload={"enabled": enabled, "previous": previous, "reason": reason},
    )
    return state


def trading_enable(*, actor: str, reason: str) -> TradingState:
    return trading_set(enabled=True, actor=actor, reason=reason)


def trading_halt(*, actor: str, reason: str) -> TradingState:
    return trading_set(enabled=False, actor=actor, reason=reason)


@transaction.atomic
def breaker_trip(*, name: str, actor: str, reason: str) -> CircuitBreaker:
    breaker, _ = CircuitBreaker.objects.select_for_update().get_or_create(name=name)
    if not breaker.tripped:
        breaker.tripped, breaker.reason, breaker.since, breaker.changed_by = True, reason, timezone.now(), actor
        breaker.save()
        audit_record(kind="breaker.tripped", actor=actor, payload={"breaker": name, "reason": reason})
    return breaker


@transaction.atomic
def breaker_reset(*, name: str, actor: str, reason: str) -> CircuitBreaker:
    breaker = CircuitBreaker.objects.select_for_update().get(name=name)
    if breaker.tripped:
        breaker.tripped, breaker.reason, breaker.since, breaker.changed_by = False, reason, timezone.now(), actor
        breaker.save()
        audit_record(kind="breaker.reset", actor=actor, payload={"breaker": name, "reason": reason})
    return breaker


# --- rulesets ------------------------------------------------------------------


def ruleset_params(*, ruleset: Ruleset) -> dict:
    """The engine's view of a ruleset, child rows folded in."""
    return {
        "version": ruleset.version,
        "mode": ruleset.mode,
        "min_confidence": str(ruleset.min_confidence),
        "max_signal_age_seconds": str(ruleset.max_signal_age_seconds),
        "max_slippage_bps": str(ruleset.max_slippage_bps),
        "max_price_deviation_bps": str(ruleset.max_price_deviation_bps),
        "max_order_notional": str(ruleset.max_order_notional),
        "default_strategy_budget": str(ruleset.default_strategy_budget),
        "max_gross_exposure": str(ruleset.max_gross_exposure),
        "max_open_positions": ruleset.max_open_positions,
        "max_proposals_per_minute": ruleset.max_proposals_per_minute,
        "quorum_required": ruleset.quorum_required,
        "vote_timeout_seconds": str(ruleset.vote_timeout_seconds),
        "assets": {
            limit.instrument.symbol: {
                "max_position_quantity": str(limit.max_position_quantity),
                "max_exposure": str(limit.max_exposure),
            }
            for limit in ruleset.asset_limits.select_related("instrument")
        },
        "strategy_budgets": {
            budget.strategy.slug: str(budget.max_exposure) for budget in ruleset.strategy_budgets.select_related("strategy")
        },
    }


@transaction.atomic
def ruleset_publish(*, ruleset: Ruleset, actor: str) -> Ruleset:
    ruleset = Ruleset.objects.select_for_update().get(pk=ruleset.pk)
    if ruleset.is_published:
        raise ValueError(f"ruleset v{ruleset.version} is already published")
    ruleset.full_clean()
    ruleset.params = ruleset_params(ruleset=ruleset)
    ruleset.status, ruleset.published_at, ruleset.published_by = Ruleset.Status.PUBLISHED, timezone.now(), actor
    ruleset.save()
    audit_record(kind="ruleset.published", actor=actor, payload={"version": ruleset.version, "params": ruleset.params})
    return ruleset


@transaction.atomic
def ruleset_new_draft(*, source: Ruleset | None, actor: str) -> Ruleset:
    """Editing a published ruleset means a new draft version copied from it."""
    last = Ruleset.objects.select_for_update().order_by("-version").first()
    version = last.version + 1 if last else 1
    copy_fields = {}
    if source is not None:
        skip = {"id", "version", "status", "created_at", "created_by", "published_at", "published_by", "params", "notes"}
        copy_fields = {f.name: getattr(source, f.name) for f in Ruleset._meta.concrete_fields if f.name not in skip}
    draft = Ruleset.objects.create(version=version, created_by=actor, **copy_fields)
    if source is not None:
        for limit in source.asset_limits.all():
            AssetLimit.objects.create(
                ruleset=draft,
                instrument=limit.instrument,
                max_position_quantity=limit.max_position_quantity,
                max_exposure=limit.max_exposure,
            )
        for budget in source.strategy_budgets.all():
            StrategyBudget.objects.create(ruleset=draft, strategy=budget.strategy, max_exposure=budget.max_exposure)
    audit_record(
        kind="ruleset.draft_created",
        actor=actor,
        payload={"version": version, "from_version": source.version if source else None},
    )
    return draft


# --- proposals -----------------------------------------------------------------


def request_hash(body: dict) -> str:
    return sha256_hex(canonical_json(body))


def proposal_submit(
    *, agent: Agent, strategy: Strategy, data: dict, idempotency_key: str, body_hash: str, received_at
) -> tuple[Proposal, bool]:
    """Store a proposal and enqueue its evaluation after commit.

    Returns (proposal, created). The same key with the same body returns the first
    proposal; with another body it raises IdempotencyConflict. The uniqueness is the
    database's, so concurrent duplicates cannot both insert.
    """
    try:
        with transaction.atomic():
            proposal = Proposal.objects.create(
                agent=agent,
                strategy=strategy,
                idempotency_key=idempotency_key,
                request_hash=body_hash,
                received_at=received_at,
                status_changed_at=received_at,
                **data,
            )
            audit_record(
                kind="proposal.received",
                actor=f"agent:{agent.name}",
                proposal_id=proposal.id,
                payload={"proposal": selectors.proposal_engine_input(proposal=proposal), "idempotency_key": idempotency_key},
            )
            # robust: with the broker down the proposal is still stored and answered;
            # the sweeper enqueues it once the broker is back.
            transaction.on_commit(lambda: _enqueue_evaluation(proposal.id), robust=True)
    except IntegrityError:
        existing = Proposal.objects.filter(agent=agent, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        if existing.request_hash != body_hash:
            raise IdempotencyConflict()
        return existing, False
    return proposal, True


def _enqueue_evaluation(proposal_id):
    from governance.tasks import proposal_evaluate_task

    proposal_evaluate_task.delay(str(proposal_id))


def decision_digest(*, proposal_id, outcome, approved_quantity, ruleset_version, checks, inputs) -> str:
    """The digest MPC nodes sign: everything the decision is, canonically."""
    return sha256_hex(
        canonical_json(
            {
                "proposal_id": str(proposal_id),
                "outcome": outcome,
                "approved_quantity": None if approved_quantity is None else str(approved_quantity),
                "ruleset_version": ruleset_version,
                "checks": checks,
                "inputs": inputs,
            }
        )
    )


def proposal_evaluate(*, proposal_id) -> Decision | None:
    """Decide a pending proposal. Idempotent: a proposal already decided is left alone."""
    with transaction.atomic():
        # The trading-state row lock serializes evaluations: exposure read here
        # cannot change until this decision (and its reservation) commits.
        state = trading_state_locked()
        proposal = (
            Proposal.objects.select_for_update(of=("self",))
            .select_related("strategy", "instrument")
            .filter(id=proposal_id, status=Proposal.Status.PENDING)
            .first()
        )
        if proposal is None or Decision.objects.filter(proposal_id=proposal_id).exists():
            return None
        ruleset = selectors.ruleset_current()
        if ruleset is None:
            return None  # nothing published: stays pending and visible; the sweeper retries
        inputs = {
            "proposal": selectors.proposal_engine_input(proposal=proposal),
            "context": selectors.decision_context(
                proposal=proposal, trading_enabled=state.enabled, trading_reason=state.reason
            ),
            "rules": ruleset.params,
        }
        if settings.CHRONOSX_EVALUATION_DELAY_SECONDS:
            time.sleep(settings.CHRONOSX_EVALUATION_DELAY_SECONDS)
        result = engine.evaluate(**inputs)
        decision = Decision.objects.create(
            proposal=proposal,
            outcome=result["outcome"],
            approved_quantity=result["approved_quantity"],
            ruleset=ruleset,
            ruleset_version=ruleset.version,
            decided_at=timezone.now(),
            checks=result["checks"],
            inputs=inputs,
            digest=decision_digest(
                proposal_id=proposal.id,
                outcome=result["outcome"],
                approved_quantity=result["approved_quantity"],
                ruleset_version=ruleset.version,
                checks=result["checks"],
                inputs=inputs,
            ),
        )
        audit_record(
            kind="decision.made",
            actor="governance",
            proposal_id=proposal.id,
            payload={
                "outcome": decision.outcome,
                "approved_quantity": result["approved_quantity"],
                "ruleset_version": ruleset.version,
                "checks": result["checks"],
                "inputs": inputs,
                "digest": decision.digest,
            },
        )
        if decision.outcome == Decision.Outcome.BLOCK:
            proposal_transition(proposal_id=proposal.id, to=Proposal.Status.BLOCKED, actor="governance", reason="blocked by rules")
        else:
            from governance.quorum import quorum_open

            quorum_open(proposal=proposal, decision=decision)
        return decision


def proposal_transition(*, proposal_id, to: str, actor: str, reason: str, from_statuses=("pending",), extra=None) -> bool:
    """Move a proposal between statuses with a conditional update, so two workers
    can never both make the same transition. Audited in the caller's transaction."""
    with transaction.atomic():
        changed = Proposal.objects.filter(id=proposal_id, status__in=from_statuses).update(
            status=to, status_changed_at=timezone.now()
        )
        if changed:
            audit_record(
                kind="proposal.status",
                actor=actor,
                proposal_id=proposal_id,
                payload={"to": to, "from": list(from_statuses), "reason": reason, **(extra or {})},
            )
        return bool(changed)


def proposals_claim_for_sweep(*, proposal_ids, now, every_seconds: float) -> list:
    """Of these stuck proposals, the ones the sweeper may re-enqueue now: each at most once
    per `every_seconds`. A slow worker's backlog is then not multiplied by the sweeper
    (a conditional update per proposal, so two sweepers never both claim one)."""
    due_before = now - timedelta(seconds=every_seconds)
    claimed = []
    for proposal_id in proposal_ids:
        due = Proposal.objects.filter(id=proposal_id).filter(Q(swept_at__isnull=True) | Q(swept_at__lt=due_before))
        if due.update(swept_at=now):
            claimed.append(proposal_id)
    return claimed


def proposals_sweep(*, now=None) -> dict:
    """Pick up whatever a lost message or a killed worker left behind."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.CHRONOSX_SWEEP_AFTER_SECONDS)
    undecided = proposals_claim_for_sweep(
        proposal_ids=Proposal.objects.filter(
            status=Proposal.Status.PENDING, decision__isnull=True, status_changed_at__lt=stale_before
        )
        .order_by("received_at")
        .values_list("id", flat=True)[:500],
        now=now,
        every_seconds=settings.CHRONOSX_SWEEP_AFTER_SECONDS,
    )
    for proposal_id in undecided:
        _enqueue_evaluation(proposal_id)

    from governance.quorum import quorum_sweep

    counts = {"reevaluated": len(undecided), **quorum_sweep(now=now)}
    try:
        from exchange.services import orders_sweep
    except ImportError:
        return counts
    counts.update(orders_sweep(now=now))
    return counts
