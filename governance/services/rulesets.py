"""Ruleset versions: draft -> submitted -> published, with four eyes.

Risk officers copy a version into a draft, edit it (every value checked against the parameter
table), submit it, and another risk officer approves it: approving publishes it, and the
approver must be none of the people who created, edited or submitted it. An edit after
submission sends the draft back to draft. A published version never changes; a rollback is a
new draft copied from an older version, through the same four eyes.

The lifecycle is one transitions table and one transition function (ruleset_transition),
which does the conditional update and writes the audit event in the same transaction.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from chronosx.canonical import canonical_json, sha256_hex
from chronosx.fields import ExactDecimalField
from governance import engine
from governance.models import AssetLimit, Instrument, Ruleset, Strategy, StrategyBudget
from governance.parameters import (
    ASSET_PARAMETERS,
    ASSETS,
    BUDGET_PARAMETER,
    BUDGETS,
    RULE_PARAMETERS,
    parameter_path,
    parameters_errors,
)
from governance.selectors.controls import ruleset_current
from ledger.services import audit_record

S = Ruleset.Status

# Every status a ruleset may move to, from each status. Published is final.
#   draft     -> submitted (for a second risk officer's approval)
#   submitted -> published (approved by someone who neither edited nor submitted it)
#             |  draft     (edited after submission: it must be submitted, and approved, again)
RULESET_TRANSITIONS = {
    S.DRAFT: {S.SUBMITTED},
    S.SUBMITTED: {S.PUBLISHED, S.DRAFT},
}
TRANSITION_EVENTS = {S.SUBMITTED: "ruleset.submitted", S.PUBLISHED: "ruleset.published", S.DRAFT: "ruleset.returned_to_draft"}


class RulesetError(Exception):
    """What was asked does not fit the ruleset's state (published, not submitted, outdated…)."""


class FourEyesError(RulesetError):
    """The approver created, edited or submitted the draft: someone else must approve it."""


# --- what the engine is given, and the diff ----------------------------------------------


def _param(ruleset: Ruleset, name: str):
    # Decimals as their exact text (what the engine parses); counts and the mode as they are.
    value = getattr(ruleset, name)
    return str(value) if isinstance(Ruleset._meta.get_field(name), ExactDecimalField) else value


def ruleset_params(*, ruleset: Ruleset) -> dict:
    """The engine's view of a ruleset (Ruleset.PARAMETERS), child rows folded in."""
    return {
        "version": ruleset.version,
        **{name: _param(ruleset, name) for name in Ruleset.PARAMETERS},
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


def ruleset_params_of(ruleset: Ruleset) -> dict:
    """A published version's frozen params; a draft's as they are now."""
    return ruleset.params if ruleset.is_published and ruleset.params else ruleset_params(ruleset=ruleset)


def params_digest(params: dict) -> str:
    """What a draft's content is, as one hash (an impact report says which content it replayed)."""
    return sha256_hex(canonical_json(params))


def params_flat(params: dict | None) -> dict:
    """{parameter name: value text}: the ruleset fields in table order, then each asset's
    limits and each strategy's budget (the names `ruleset set` takes)."""
    if not params:
        return {}
    flat = {p.name: p.text(params.get(p.name)) for p in RULE_PARAMETERS}
    for symbol, limits in sorted(params.get(ASSETS, {}).items()):
        for field in ASSET_PARAMETERS:
            flat[f"{ASSETS}.{symbol}.{field}"] = str(limits.get(field))
    for slug, budget in sorted(params.get(BUDGETS, {}).items()):
        flat[f"{BUDGETS}.{slug}"] = str(budget)
    return flat


def params_diff(old: dict | None, new: dict) -> list[tuple[str, str, str]]:
    """(name, old, new) for each parameter whose text differs; `none` where one side has none."""
    before, after = params_flat(old), params_flat(new)
    # What the allocation policy gives each strategy (before any scaling by PnL), derived.
    for flat, params in ((before, old), (after, new)):
        for slug, budget in sorted(engine.allocated_budgets(params or {}).items()):
            flat[f"allocation.{slug}"] = engine.fmt(budget)
    names = list(after) + [name for name in before if name not in after]
    return [(n, before.get(n, "none"), after.get(n, "none")) for n in names if before.get(n, "none") != after.get(n, "none")]


def ruleset_diff(*, ruleset: Ruleset) -> list[tuple[str, str, str]]:
    """How `ruleset` differs from the version in force: (name, in force, this version)."""
    current = ruleset_current()
    return params_diff(current.params if current else None, ruleset_params_of(ruleset))


# --- the lifecycle -----------------------------------------------------------------------


@transaction.atomic(savepoint=False)  # part of the caller's transaction when there is one
def ruleset_transition(*, ruleset_id, to: str, actor: str, reason: str, fields: dict | None = None, extra=None) -> Ruleset:
    """Move a ruleset to `to` if the transitions table allows it from its status now; the
    row is locked, updated only if its status is still the one read, and the audit event
    is written in the same transaction. `fields` are set in the same update."""
    ruleset = Ruleset.objects.select_for_update().get(pk=ruleset_id)
    current = ruleset.status
    if to not in RULESET_TRANSITIONS.get(current, ()):
        raise RulesetError(f"v{ruleset.version} is {current}: it cannot become {to}")
    moved = Ruleset.objects.filter(pk=ruleset_id, status=current).update(status=to, **(fields or {}))
    if moved != 1:  # cannot happen under the lock; never write an event for a move not made
        raise RulesetError(f"v{ruleset.version} changed while it was being moved to {to}")
    audit_record(
        kind=TRANSITION_EVENTS[to],
        actor=actor,
        payload={"version": ruleset.version, "from": current, "to": to, "reason": reason, **(extra or {})},
    )
    ruleset.refresh_from_db()
    return ruleset


def _editors_with(ruleset: Ruleset, user: str) -> list[str]:
    return ruleset.editors if user in ruleset.editors else [*ruleset.editors, user]


def _locked_unpublished(ruleset_id) -> Ruleset:
    ruleset = Ruleset.objects.select_for_update().get(pk=ruleset_id)
    if ruleset.is_published:
        raise RulesetError(
            f"v{ruleset.version} is published and never changes; make a new draft from it (ruleset draft --from {ruleset.version})"
        )
    return ruleset


def _validate_all(ruleset: Ruleset) -> None:
    """Every value of the version checked against the table, child rows included (they may
    have been written by other means than ruleset_edit)."""
    errors = parameters_errors(ruleset, RULE_PARAMETERS)
    for limit in ruleset.asset_limits.select_related("instrument"):
        for name, messages in parameters_errors(limit, ASSET_PARAMETERS.values()).items():
            errors[f"{ASSETS}.{limit.instrument.symbol}.{name}"] = messages
    for budget in ruleset.strategy_budgets.select_related("strategy"):
        if parameters_errors(budget, [BUDGET_PARAMETER]):
            errors[f"{BUDGETS}.{budget.strategy.slug}"] = [
                BUDGET_PARAMETER.error(budget.max_exposure, name=f"{BUDGETS}.{budget.strategy.slug}").messages[0]
            ]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def ruleset_new_draft(*, source: Ruleset | None, actor: str, user: str | None = None) -> Ruleset:
    """A new draft version copied from `source` (defaults without one). Its creator (`user`,
    else the actor) is its first editor."""
    last = Ruleset.objects.select_for_update().order_by("-version").first()
    version = last.version + 1 if last else 1
    copy_fields = {}
    if source is not None:
        copy_fields = {name: getattr(source, name) for name in Ruleset.PARAMETERS}
    draft = Ruleset.objects.create(version=version, created_by=actor, editors=[user or actor], **copy_fields)
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


def _parse_changes(changes: dict) -> tuple[list, dict]:
    """[(path, value)] with every value parsed, or ValidationError {name: [message]} for all
    that are not allowed. A value None for `assets.SYMBOL` / `strategy_budgets.SLUG` removes the row."""
    parsed, errors = [], {}
    for name, raw in changes.items():
        try:
            path = parameter_path(name, whole_row=raw is None)
            if raw is None and path.scope is None:
                raise path.parameter.error(raw, name=name)
            if path.scope == ASSETS and not Instrument.objects.filter(symbol=path.key).exists():
                raise ValidationError(f"{name}: no instrument {path.key}")
            if path.scope == BUDGETS and not Strategy.objects.filter(slug=path.key).exists():
                raise ValidationError(f"{name}: no strategy {path.key}")
            parsed.append((path, None if raw is None else path.parameter.parse(raw, name=name)))
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)
    return parsed


def _apply(ruleset: Ruleset, path, value) -> tuple[str, str] | None:
    """Set one parameter of the locked draft; (old text, new text), or None when unchanged."""
    if path.scope is None:
        old = getattr(ruleset, path.name)
        if str(old) == str(value):
            return None
        setattr(ruleset, path.name, value)
        return str(old), str(value)
    if path.scope == ASSETS:
        row = AssetLimit.objects.filter(ruleset=ruleset, instrument__symbol=path.key).first()
        if value is None:
            if row is None:
                return None
            row.delete()
            return f"{row.max_position_quantity} / {row.max_exposure}", "none"
        if row is None:
            # A new asset row: the limit not given yet is 0 (no room), as without a row.
            row = AssetLimit(ruleset=ruleset, instrument=Instrument.objects.get(symbol=path.key),
                             max_position_quantity="0", max_exposure="0")
            old = "none"
        else:
            old = str(getattr(row, path.field))
            if old == str(value):
                return None
        setattr(row, path.field, value)
        row.save()
        return old, str(value)
    row = StrategyBudget.objects.filter(ruleset=ruleset, strategy__slug=path.key).first()
    if value is None:
        if row is None:
            return None
        row.delete()
        return str(row.max_exposure), "none"
    if row is not None and str(row.max_exposure) == str(value):
        return None
    old = "none" if row is None else str(row.max_exposure)
    row = row or StrategyBudget(ruleset=ruleset, strategy=Strategy.objects.get(slug=path.key))
    row.max_exposure = value
    row.save()
    return old, str(value)


@transaction.atomic
def ruleset_edit(*, ruleset_id, changes: dict, actor: str, user: str, notes: str | None = None) -> dict:
    """Set parameters of a draft: {name: value} with the names `ruleset set` takes (None
    removes an asset's or a strategy's row). Every value is checked first; nothing is written
    unless all are allowed. The editor joins the draft's editors, the changes are audited
    (from, to) in the same transaction, and a submitted draft goes back to draft.
    Returns {name: (old, new)} of what changed (nothing changed: no event)."""
    ruleset = _locked_unpublished(ruleset_id)
    parsed = _parse_changes(changes)
    changed = {}
    for path, value in parsed:
        moved = _apply(ruleset, path, value)
        if moved is not None:
            changed[path.name] = moved
    if notes is not None and notes != ruleset.notes:
        changed["notes"] = (ruleset.notes, notes)
        ruleset.notes = notes
    if not changed:
        return {}
    ruleset.editors = _editors_with(ruleset, user)
    ruleset.save(update_fields=[*Ruleset.PARAMETERS, "notes", "editors"])
    audit_record(
        kind="ruleset.changed",
        actor=actor,
        payload={"version": ruleset.version, "changed": {name: {"from": a, "to": b} for name, (a, b) in changed.items()}},
    )
    if ruleset.status == S.SUBMITTED:
        ruleset_transition(
            ruleset_id=ruleset.pk,
            to=S.DRAFT,
            actor=actor,
            reason="edited after submission",
            fields={"submitted_at": None, "submitted_by": ""},
        )
    return changed


@transaction.atomic
def ruleset_submit(*, ruleset_id, actor: str, user: str) -> Ruleset:
    """draft -> submitted. The submitter is an editor too: they may not approve it."""
    ruleset = _locked_unpublished(ruleset_id)
    _validate_all(ruleset)
    return ruleset_transition(
        ruleset_id=ruleset.pk,
        to=S.SUBMITTED,
        actor=actor,
        reason="submitted for approval",
        fields={"submitted_at": timezone.now(), "submitted_by": user, "editors": _editors_with(ruleset, user)},
    )


def four_eyes_refusal(*, ruleset: Ruleset, user: str) -> str | None:
    """Why `user` may not approve `ruleset` (they created, edited or submitted it), or None."""
    if user in ruleset.editors:
        return (
            f"{user} created, edited or submitted v{ruleset.version} "
            f"(editors: {', '.join(ruleset.editors)}); another risk officer must approve it"
        )
    return None


def _publish(ruleset: Ruleset, *, actor: str, approver: str, reason: str) -> Ruleset:
    """submitted -> published: in force from now. Locks the version in force, so that two
    approvals are taken one after the other, and refuses a draft older than it."""
    published = Ruleset.objects.filter(status=S.PUBLISHED).order_by("-version")
    published.select_for_update().first()
    # Read again once the lock is held: a version another approval published meanwhile is
    # seen by this new statement (the locking one saw the rows as they were before it waited).
    current = published.first()
    if current is not None and current.version > ruleset.version:
        raise RulesetError(
            f"v{current.version} was published after v{ruleset.version} was drafted; "
            f"make a new draft from v{ruleset.version} (ruleset draft --from {ruleset.version})"
        )
    _validate_all(ruleset)
    params = ruleset_params(ruleset=ruleset)
    return ruleset_transition(
        ruleset_id=ruleset.pk,
        to=S.PUBLISHED,
        actor=actor,
        reason=reason,
        fields={"params": params, "published_at": timezone.now(), "published_by": approver},
        extra={"params": params, "editors": ruleset.editors, "approved_by": approver,
               "replaces": current.version if current else None},
    )


@transaction.atomic
def ruleset_approve(*, ruleset_id, actor: str, user: str) -> Ruleset:
    """submitted -> published, approved by `user`, who must be none of its editors."""
    ruleset = _locked_unpublished(ruleset_id)
    if ruleset.status != S.SUBMITTED:
        raise RulesetError(f"v{ruleset.version} is {ruleset.status}: only a submitted draft can be approved")
    refusal = four_eyes_refusal(ruleset=ruleset, user=user)
    if refusal:
        raise FourEyesError(refusal)
    return _publish(ruleset, actor=actor, approver=user, reason="approved")


@transaction.atomic
def ruleset_publish(*, ruleset: Ruleset, actor: str) -> Ruleset:
    """The installation's own publish, with no second pair of eyes: for the first ruleset
    (seed_demo) and for tests and benchmarks that set a ruleset up. No operator path (the
    admin, the `ruleset` command) calls it: they submit and approve."""
    ruleset = _locked_unpublished(ruleset.pk)
    if ruleset.status == S.DRAFT:
        _validate_all(ruleset)
        ruleset = ruleset_transition(ruleset_id=ruleset.pk, to=S.SUBMITTED, actor=actor, reason="published by the system",
                                     fields={"submitted_at": timezone.now(), "submitted_by": actor})
    return _publish(ruleset, actor=actor, approver=actor, reason="published by the system")


@transaction.atomic
def ruleset_discard(*, ruleset_id, actor: str) -> int:
    """Delete a draft (a published version is never deleted); audited. Returns its version."""
    ruleset = _locked_unpublished(ruleset_id)
    audit_record(kind="ruleset.discarded", actor=actor, payload={"version": ruleset.version, "status": ruleset.status})
    ruleset.delete()
    return ruleset.version
