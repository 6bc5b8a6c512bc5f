"""Evaluation: the rule engine decides a pending proposal; a decision that allows an order opens the vote."""

import time

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from chronosx import metrics
from governance import engine
from governance.digests import decision_digest
from governance.models import Decision, Proposal
from governance.selectors.context import decision_context
from governance.selectors.controls import ruleset_current
from governance.selectors.proposals import proposal_engine_input
from governance.services.controls import loss_breakers_enforce, trading_state_locked
from governance.services.proposals import proposal_transition
from governance.services.quorum import quorum_open
from ledger.services import audit_record

ACTOR = "governance"


def proposal_evaluate(*, proposal_id) -> Decision | None:
    """Decide a pending proposal. Idempotent: a proposal already decided is left alone."""
    with transaction.atomic():
        # The trading-state row lock serializes evaluations: exposure read here
        # cannot change until this decision (and its reservation) commits.
        state = trading_state_locked()
        # A proposal stays pending while it is voted on: whether it is decided comes with the read.
        proposal = (
            Proposal.objects.select_for_update(of=("self",))
            .select_related("strategy", "instrument")
            .annotate(decided=Exists(Decision.objects.filter(proposal_id=OuterRef("pk"))))
            .filter(id=proposal_id, status=Proposal.Status.PENDING)
            .first()
        )
        if proposal is None or proposal.decided:
            return None
        ruleset = ruleset_current()
        if ruleset is None:
            return None  # nothing published: stays pending and visible; the sweeper retries
        inputs = {
            "proposal": proposal_engine_input(proposal=proposal),
            "context": decision_context(
                proposal=proposal, trading_state=state.state, trading_reason=state.reason, rules=ruleset.params
            ),
            "rules": ruleset.params,
        }
        if settings.CHRONOSX_EVALUATION_DELAY_SECONDS:
            time.sleep(settings.CHRONOSX_EVALUATION_DELAY_SECONDS)  # fault injection for the crash tests only
        result = engine.evaluate(**inputs)
        digest = decision_digest(
            proposal_id=proposal.id,
            outcome=result["outcome"],
            approved_quantity=result["approved_quantity"],
            ruleset_version=ruleset.version,
            checks=result["checks"],
            inputs=inputs,
        )
        decision = Decision.objects.create(
            proposal=proposal,
            outcome=result["outcome"],
            approved_quantity=result["approved_quantity"],
            ruleset=ruleset,
            ruleset_version=ruleset.version,
            decided_at=timezone.now(),
            checks=result["checks"],
            inputs=inputs,
            digest=digest,
        )
        audit_record(
            kind="decision.made",
            actor=ACTOR,
            proposal_id=proposal.id,
            payload={
                "outcome": decision.outcome,
                "approved_quantity": result["approved_quantity"],
                "ruleset_version": ruleset.version,
                "checks": result["checks"],
                "inputs": inputs,
                "digest": digest,
            },
        )
        metrics.decision_made(outcome=decision.outcome, received_at=proposal.received_at, decided_at=decision.decided_at)
        # A portfolio loss past its limit trips its breaker: trading becomes reduce-only.
        loss_breakers_enforce(context=inputs["context"], rules=inputs["rules"], actor=ACTOR)
        if decision.outcome == Decision.Outcome.BLOCK:
            proposal_transition(proposal_id=proposal.id, to=Proposal.Status.BLOCKED, actor=ACTOR, reason="blocked by rules")
        else:
            quorum_open(proposal=proposal, decision=decision)
        return decision
