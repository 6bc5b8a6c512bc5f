import uuid
from datetime import datetime, timezone

import pgtrigger
from django.core.exceptions import ValidationError
from django.db import models

from chronosx.fields import ExactDecimalField
from governance.parameters import (
    ASSET_PARAMETERS,
    BUDGET_PARAMETER,
    RULE_PARAMETERS,
    parameters_errors,
)


# No time before this is a plausible trading signal, and every time after it round-trips.
READABLE_SINCE = datetime(2000, 1, 1, tzinfo=timezone.utc)


class Pausable(models.Model):
    """A strategy or an instrument an operator may pause (nothing of it passes) and resume."""

    paused = models.BooleanField(default=False)
    pause_reason = models.CharField(max_length=500, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class Instrument(Pausable):
    symbol = models.CharField(max_length=32, unique=True)
    base_asset = models.CharField(max_length=16)
    quote_asset = models.CharField(max_length=16, default="USDT")
    min_quantity = ExactDecimalField()
    quantity_step = ExactDecimalField()
    price_tick = ExactDecimalField(default="0.01")
    enabled = models.BooleanField(default=True)

    def __str__(self):
        return self.symbol


class Strategy(Pausable):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "strategies"

    def __str__(self):
        return self.slug


class Agent(models.Model):
    """A strategy process. It may only propose, and only for its strategies."""

    name = models.CharField(max_length=64, unique=True)
    # Only a SHA-256 of the token is kept; the token itself is shown once.
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=12)
    strategies = models.ManyToManyField(Strategy, related_name="agents")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # A staff token (a risk desk's drop copy): reads every strategy's proposals, portfolio and
    # events; it still proposes only for its own strategies.
    is_staff = models.BooleanField(default=False)

    # DRF treats the authenticated principal as a user.
    is_authenticated = True

    def __str__(self):
        return self.name


class Mode(models.TextChoices):
    ALPHA = "alpha"
    FULL = "full"


# The quorum a ruleset asks for unless it says otherwise (votes out of the three nodes).
QUORUM_DEFAULT = 2


class Ruleset(models.Model):
    """A versioned set of rule parameters: draft -> submitted -> published (four eyes).
    Published versions never change (the database refuses it too)."""

    # The fields the engine is given as `rules` (with the asset limits and strategy
    # budgets folded in), in the order they are shown: one per row of RULE_PARAMETERS,
    # which also makes the fields (below the class).
    PARAMETERS = tuple(p.name for p in RULE_PARAMETERS)

    class Status(models.TextChoices):
        DRAFT = "draft"
        SUBMITTED = "submitted"
        PUBLISHED = "published"

    version = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    # Everyone who created, edited or submitted this version (usernames, or the system
    # actor): none of them may approve it.
    editors = models.JSONField(default=list, blank=True, editable=False)
    submitted_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.CharField(max_length=150, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.CharField(max_length=150, blank=True)
    # Frozen at publish: the exact parameters the engine gets (child rows folded in).
    params = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-version"]
        permissions = [
            ("edit_ruleset", "Create, edit and submit ruleset drafts"),
            ("approve_ruleset", "Approve (publish) a ruleset draft that others edited and submitted"),
        ]
        triggers = [
            # The database itself refuses to rewrite a published version.
            pgtrigger.Protect(
                name="published_ruleset_is_immutable",
                operation=pgtrigger.Update | pgtrigger.Delete,
                condition=pgtrigger.Q(old__status="published"),
            )
        ]

    def __str__(self):
        return f"v{self.version} ({self.status})"

    @property
    def is_published(self):
        return self.status == self.Status.PUBLISHED

    def clean(self):
        errors = parameters_errors(self, RULE_PARAMETERS)
        if errors:
            raise ValidationError(errors)


for _parameter in RULE_PARAMETERS:
    Ruleset.add_to_class(_parameter.name, _parameter.model_field())


class AssetLimit(models.Model):
    """Per-instrument risk budget within a ruleset. No row: no exposure allowed."""

    ruleset = models.ForeignKey(Ruleset, on_delete=models.CASCADE, related_name="asset_limits")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT)
    max_position_quantity = ExactDecimalField(help_text="per strategy, base units")
    max_exposure = ExactDecimalField(help_text="all strategies, quote notional")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ruleset", "instrument"], name="one_asset_limit_per_ruleset")
        ]

    def __str__(self):
        return f"{self.instrument} limits in v{self.ruleset.version}"

    def clean(self):
        errors = parameters_errors(self, ASSET_PARAMETERS.values())
        if errors:
            raise ValidationError(errors)


class StrategyBudget(models.Model):
    ruleset = models.ForeignKey(Ruleset, on_delete=models.CASCADE, related_name="strategy_budgets")
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT)
    max_exposure = ExactDecimalField(help_text="quote notional")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ruleset", "strategy"], name="one_budget_per_ruleset")
        ]

    def __str__(self):
        return f"{self.strategy} budget in v{self.ruleset.version}"

    def clean(self):
        errors = parameters_errors(self, [BUDGET_PARAMETER])
        if errors:
            raise ValidationError(errors)


class ImpactReport(models.Model):
    """An impact replay of a ruleset version: what it would have decided on the stored
    proposals of the last `days` days. A worker claims it, stores its progress as it goes,
    and the result (the `ruleset impact` JSON) at the end."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    ruleset = models.ForeignKey(Ruleset, on_delete=models.CASCADE, related_name="impact_reports")
    days = models.PositiveIntegerField(default=7)
    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    # The window replayed and the digest of the parameters replayed, fixed when it starts.
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    params_digest = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self):
        return f"impact of v{self.ruleset.version} over {self.days} d ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.DONE else (100 * self.done // self.total if self.total else 0)


class TradingState(models.Model):
    """The global trading state (one row): enabled, reduce_only (only closes pass) or
    halted, always with a reason. Halted until an operator enables it.

    Its row lock also serializes every evaluation, so two proposals can never
    together overshoot an exposure cap.
    """

    class State(models.TextChoices):
        ENABLED = "enabled"
        REDUCE_ONLY = "reduce_only"
        HALTED = "halted"

    state = models.CharField(max_length=16, choices=State.choices, default=State.HALTED)
    reason = models.CharField(max_length=500, default="halted by default")
    changed_by = models.CharField(max_length=150, default="system")
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("control_trading", "Enable, halt or set reduce-only; pause and resume; press the kill switch")]

    def __str__(self):
        return f"trading {self.state}: {self.reason}"

    @property
    def enabled(self) -> bool:
        """Fully enabled: openings and closes pass (reduce_only lets closes alone through)."""
        return self.state == self.State.ENABLED

    @property
    def halted(self) -> bool:
        return self.state == self.State.HALTED


class CircuitBreaker(models.Model):
    name = models.CharField(max_length=64, unique=True)
    tripped = models.BooleanField(default=False)
    reason = models.CharField(max_length=500, blank=True)
    since = models.DateTimeField(null=True, blank=True)
    changed_by = models.CharField(max_length=150, blank=True)
    # A loss-limit breaker (daily_loss_limit, drawdown_limit) is reset under four eyes: one
    # staff user asks, a risk officer other than them approves. The pending request:
    reset_requested_by = models.CharField(max_length=150, blank=True)
    reset_requested_at = models.DateTimeField(null=True, blank=True)
    reset_request_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        permissions = [("trip_breaker", "Trip a circuit breaker"), ("reset_breaker", "Reset a circuit breaker")]

    def __str__(self):
        return self.name


class Proposal(models.Model):
    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class OrderType(models.TextChoices):
        MARKET = "market"
        LIMIT = "limit"

    class Intent(models.TextChoices):
        OPEN = "open"
        CLOSE = "close"

    class Status(models.TextChoices):
        PENDING = "pending"
        BLOCKED = "blocked"
        EXPIRED = "expired"
        APPROVED = "approved"
        ROUTED = "routed"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    FINAL_STATUSES = frozenset({Status.BLOCKED, Status.EXPIRED, Status.FILLED, Status.REJECTED, Status.CANCELLED})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="proposals")
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="proposals")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="proposals")
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = ExactDecimalField()
    order_type = models.CharField(max_length=6, choices=OrderType.choices)
    limit_price = ExactDecimalField(null=True, blank=True)
    reference_price = ExactDecimalField()
    expected_slippage_bps = ExactDecimalField()
    confidence = ExactDecimalField()
    signal_time = models.DateTimeField()
    intent = models.CharField(max_length=5, choices=Intent.choices, default=Intent.OPEN)
    received_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_changed_at = models.DateTimeField()
    # When the sweeper last re-enqueued work for this proposal: each stuck proposal is
    # re-sent at most once per sweep window, so a backlog is never multiplied.
    swept_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=64)
    request_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-received_at"]
        permissions = [
            ("request_force", "Ask for a blocked proposal to be executed (force-execute)"),
            ("approve_force", "Grant another officer's force-execute request"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["agent", "idempotency_key"], name="one_proposal_per_idempotency_key"),
            # Every stored time can be read back: the API bounds signal_time to a week
            # around now, and the database refuses what no reader could load (a year-1 date
            # at +14:00 is stored by PostgreSQL as 1 BC, which psycopg cannot return).
            models.CheckConstraint(
                condition=models.Q(signal_time__gte=READABLE_SINCE, received_at__gte=READABLE_SINCE),
                name="proposal_times_readable",
            ),
        ]
        indexes = [
            models.Index(fields=["strategy", "received_at"]),
            models.Index(fields=["status", "status_changed_at"]),
        ]

    def __str__(self):
        return f"{self.side} {self.quantity} {self.instrument_id} ({self.status})"

    @property
    def symbol(self):
        return self.instrument.symbol


class Decision(models.Model):
    """The rule engine's verdict, with every input it used, so it can be replayed."""

    class Outcome(models.TextChoices):
        APPROVE = "approve"
        MODIFY = "modify"
        BLOCK = "block"

    proposal = models.OneToOneField(Proposal, on_delete=models.PROTECT, primary_key=True, related_name="decision")
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    approved_quantity = ExactDecimalField(null=True, blank=True)
    ruleset = models.ForeignKey(Ruleset, on_delete=models.PROTECT, related_name="decisions")
    ruleset_version = models.PositiveIntegerField()
    decided_at = models.DateTimeField()
    checks = models.JSONField()
    # {"proposal": …, "context": …, "rules": …}: exactly what engine.evaluate() was given.
    inputs = models.JSONField()
    # SHA-256 over the canonical decision; MPC votes sign it.
    digest = models.CharField(max_length=64)


class Node(models.TextChoices):
    RISK = "risk"
    PORTFOLIO = "portfolio"
    EXECUTION = "execution"


class NodeKey(models.Model):
    """A node's registered Ed25519 public key. Rotation adds a row; old votes keep their key id."""

    node = models.CharField(max_length=16, choices=Node.choices)
    key_id = models.CharField(max_length=64, unique=True)
    public_key = models.CharField(max_length=64, help_text="base64 Ed25519 public key")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.node}:{self.key_id}"


class Vote(models.Model):
    class Verdict(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="votes")
    node = models.CharField(max_length=16, choices=Node.choices)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    reason = models.CharField(max_length=500)
    cast_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    decision_digest = models.CharField(max_length=64)
    # On a forced proposal: the digest of the force record the node verified, signed with the
    # decision's (governance.digests.vote_payload). Empty on every other vote.
    force_digest = models.CharField(max_length=64, blank=True, default="")
    signature = models.CharField(max_length=128, help_text="base64 Ed25519 signature")

    class Meta:
        ordering = ["cast_at"]
        constraints = [models.UniqueConstraint(fields=["proposal", "node"], name="one_vote_per_node")]


class ForceRequest(models.Model):
    """Force-execute under two keys: a request to execute a blocked proposal anyway, with a
    reason, and a second person's approval (governance.services.forcing).

        requested -> approved (by a risk officer other than the requester)
                  |  expired  (unapproved FORCE_TTL after the request; the sweeper)
                  |  refused  (declined by a risk officer)

    An approved request is the proposal's force record: its digest is what the nodes verify
    and sign with their votes. A proposal has at most one request open (requested or approved).
    """

    class Status(models.TextChoices):
        REQUESTED = "requested"
        APPROVED = "approved"
        EXPIRED = "expired"
        REFUSED = "refused"

    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="force_requests")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    reason = models.CharField(max_length=500)
    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # The decision the request was made against (its digest, as stored when requested).
    decision_digest = models.CharField(max_length=64)
    approved_by = models.CharField(max_length=150, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    # The failed checks the force overrides (rule names), fixed at approval.
    overrides = models.JSONField(default=list, blank=True)
    # SHA-256 of the force record (governance.digests.force_digest), fixed at approval.
    digest = models.CharField(max_length=64, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["proposal"],
                condition=models.Q(status__in=["requested", "approved"]),
                name="one_open_force_request_per_proposal",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="approved") | (~models.Q(approved_by="") & ~models.Q(approved_by=models.F("requested_by"))),
                name="force_approved_by_someone_else",
            ),
        ]

    def __str__(self):
        return f"force of {self.proposal_id} ({self.status})"


class WorkerKind(models.TextChoices):
    """The kinds of process the pipeline needs; each beats a heartbeat while it runs."""

    GOVERNANCE = "governance"
    ROUTER = "router"
    SCHEDULER = "scheduler"
    RISK = "risk"
    PORTFOLIO = "portfolio"
    EXECUTION = "execution"


class WorkerHeartbeat(models.Model):
    """The last heartbeat of each kind of worker (the three MPC nodes among them)."""

    kind = models.CharField(max_length=16, choices=WorkerKind.choices, primary_key=True)
    last_heartbeat = models.DateTimeField()
    key_id = models.CharField(max_length=64, blank=True, help_text="MPC nodes: the key it signs with")
    host = models.CharField(max_length=255, blank=True)

    def __str__(self):
        return f"{self.kind} @ {self.host}"


class VenueHealth(models.Model):
    """What the router, the only process holding venue credentials, last measured of a
    venue: call statistics for the automatic breakers, and its latest health probe.
    The execution node reads this record; a node never talks to a venue itself."""

    venue = models.CharField(max_length=16, unique=True)
    live = models.BooleanField(default=False)
    healthy = models.BooleanField(default=False)
    detail = models.CharField(max_length=300, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    consecutive_errors = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "venue health"

    def __str__(self):
        return self.venue
