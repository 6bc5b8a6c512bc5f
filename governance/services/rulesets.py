"""Ruleset versions: drafts are edited, a published version never changes."""

from django.db import transaction
from django.utils import timezone

from chronosx.fields import ExactDecimalField
from governance.models import AssetLimit, Ruleset, StrategyBudget
from ledger.services import audit_record


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
        copy_fields = {name: getattr(source, name) for name in Ruleset.PARAMETERS}
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
