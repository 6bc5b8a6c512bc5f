import csv

from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import redirect

from chronosx.admin import ReadOnlyAdmin
from governance.models import (
    Agent,
    AssetLimit,
    CircuitBreaker,
    Decision,
    Instrument,
    NodeKey,
    Proposal,
    Ruleset,
    Strategy,
    StrategyBudget,
    TradingState,
    VenueHealth,
    Vote,
    WorkerHeartbeat,
)
from governance.services import controls, rulesets
from ledger.services import audit_record


def actor_of(request) -> str:
    return f"admin:{request.user.get_username()}"


class AuditedAdmin(admin.ModelAdmin):
    """Every operator change is audited with old and new values, in the same transaction."""

    def save_model(self, request, obj, form, change):
        before = {name: str(form.initial.get(name)) for name in form.changed_data}
        super().save_model(request, obj, form, change)
        audit_record(
            kind=f"{obj._meta.model_name}.{'changed' if change else 'created'}",
            actor=actor_of(request),
            payload={
                "object": str(obj),
                "changed": {name: {"from": before[name], "to": str(form.cleaned_data.get(name))} for name in sorted(before)},
            },
        )

    def delete_model(self, request, obj):
        audit_record(kind=f"{obj._meta.model_name}.deleted", actor=actor_of(request), payload={"object": str(obj)})
        super().delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for inline_form in formset.forms:
            if inline_form.has_changed() and inline_form.instance.pk:
                audit_record(
                    kind=f"{formset.model._meta.model_name}.changed",
                    actor=actor_of(request),
                    payload={
                        "parent": str(form.instance),
                        "object": str(inline_form.instance),
                        "changed": {
                            name: {"from": str(inline_form.initial.get(name)), "to": str(inline_form.cleaned_data.get(name))}
                            for name in sorted(inline_form.changed_data)
                        },
                    },
                )
        for deleted in formset.deleted_objects:
            audit_record(
                kind=f"{formset.model._meta.model_name}.deleted",
                actor=actor_of(request),
                payload={"parent": str(form.instance), "object": str(deleted)},
            )


@admin.register(Instrument)
class InstrumentAdmin(AuditedAdmin):
    list_display = ["symbol", "base_asset", "quote_asset", "min_quantity", "quantity_step", "enabled"]


@admin.register(Strategy)
class StrategyAdmin(AuditedAdmin):
    list_display = ["slug", "name", "created_at"]


@admin.register(Agent)
class AgentAdmin(AuditedAdmin):
    list_display = ["name", "token_prefix", "is_active", "created_at"]
    fields = ["name", "token_prefix", "strategies", "is_active"]
    readonly_fields = ["token_prefix"]

    def has_add_permission(self, request):
        return False  # tokens are issued by `manage.py create_agent`, shown once


class LimitInlineMixin:
    extra = 0

    def has_add_permission(self, request, obj=None):
        return obj is None or not obj.is_published

    def has_change_permission(self, request, obj=None):
        return obj is None or not obj.is_published

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.is_published


class AssetLimitInline(LimitInlineMixin, admin.TabularInline):
    model = AssetLimit


class StrategyBudgetInline(LimitInlineMixin, admin.TabularInline):
    model = StrategyBudget


@admin.register(Ruleset)
class RulesetAdmin(AuditedAdmin):
    """Risk officers edit drafts; publishing freezes a version for good."""

    list_display = ["version", "status", "mode", "min_confidence", "max_order_notional", "quorum_required", "published_at", "published_by"]
    list_filter = ["status", "mode"]
    inlines = [AssetLimitInline, StrategyBudgetInline]
    actions = ["new_draft_from", "publish"]
    readonly_fields = ["version", "status", "created_at", "created_by", "published_at", "published_by", "params"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_published:
            return [f.name for f in Ruleset._meta.concrete_fields]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.is_published

    def add_view(self, request, form_url="", extra_context=None):
        # Versions are numbered by the service; start from the latest published one.
        draft = rulesets.ruleset_new_draft(source=Ruleset.objects.filter(status="published").first(), actor=actor_of(request))
        self.message_user(request, f"Draft v{draft.version} created from the current ruleset.")
        return redirect("admin:governance_ruleset_change", draft.pk)

    @admin.action(description="New draft version from the selected ruleset")
    def new_draft_from(self, request, queryset):
        for ruleset in queryset:
            draft = rulesets.ruleset_new_draft(source=ruleset, actor=actor_of(request))
            self.message_user(request, f"Draft v{draft.version} created from v{ruleset.version}.")

    @admin.action(description="Publish the selected draft (it becomes the ruleset in force)")
    def publish(self, request, queryset):
        for ruleset in queryset:
            try:
                rulesets.ruleset_publish(ruleset=ruleset, actor=actor_of(request))
                self.message_user(request, f"v{ruleset.version} published.")
            except Exception as exc:
                self.message_user(request, f"v{ruleset.version} not published: {exc}", level=messages.ERROR)


@admin.register(TradingState)
class TradingStateAdmin(admin.ModelAdmin):
    list_display = ["enabled", "reason", "changed_by", "changed_at"]
    fields = ["enabled", "reason", "changed_by", "changed_at"]
    readonly_fields = ["changed_by", "changed_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Through the service, so the switch is locked and audited like the CLI's.
        controls.trading_set(enabled=obj.enabled, actor=actor_of(request), reason=obj.reason)


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(admin.ModelAdmin):
    list_display = ["name", "tripped", "reason", "since", "changed_by"]
    readonly_fields = ["name", "tripped", "reason", "since", "changed_by"]
    actions = ["reset"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Reset the selected breakers")
    def reset(self, request, queryset):
        for breaker in queryset.filter(tripped=True):
            controls.breaker_reset(name=breaker.name, actor=actor_of(request), reason="reset in admin")
            self.message_user(request, f"{breaker.name} reset.")


class DecisionInline(admin.StackedInline):
    model = Decision
    can_delete = False
    readonly_fields = ["outcome", "approved_quantity", "ruleset_version", "decided_at", "checks", "inputs", "digest"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


class VoteInline(admin.TabularInline):
    model = Vote
    can_delete = False
    readonly_fields = ["node", "verdict", "reason", "cast_at", "key_id", "signature"]
    fields = readonly_fields
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Proposal)
class ProposalAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "strategy", "instrument", "side", "quantity", "intent", "status", "outcome"]
    list_filter = ["status", "strategy", "instrument", "intent"]
    search_fields = ["id", "idempotency_key"]
    inlines = [DecisionInline, VoteInline]
    actions = ["export_csv"]

    @admin.display(description="decision")
    def outcome(self, proposal):
        decision = getattr(proposal, "decision", None)
        return decision.outcome if decision else "—"

    @admin.action(description="Export selected as CSV (compliance report)")
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="chronosx-proposals.csv"'
        writer = csv.writer(response)
        writer.writerow(
            ["id", "received_at", "agent", "strategy", "symbol", "side", "quantity", "order_type", "limit_price",
             "reference_price", "confidence", "intent", "status", "outcome", "approved_quantity", "ruleset_version",
             "failed_checks", "decision_digest"]
        )
        for p in queryset.select_related("agent", "strategy", "instrument", "decision").order_by("received_at"):
            decision = getattr(p, "decision", None)
            failed = "; ".join(f"{c['rule']}: {c['detail']}" for c in decision.checks if not c["passed"]) if decision else ""
            writer.writerow(
                [p.id, p.received_at.isoformat(), p.agent.name, p.strategy.slug, p.instrument.symbol, p.side, p.quantity,
                 p.order_type, p.limit_price or "", p.reference_price, p.confidence, p.intent, p.status,
                 decision.outcome if decision else "", (decision.approved_quantity or "") if decision else "",
                 decision.ruleset_version if decision else "", failed, decision.digest if decision else ""]
            )
        audit_record(kind="report.exported", actor=actor_of(request), payload={"report": "proposals", "rows": queryset.count()})
        return response


@admin.register(NodeKey)
class NodeKeyAdmin(ReadOnlyAdmin):
    list_display = ["node", "key_id", "active", "created_at"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["kind", "last_heartbeat", "key_id", "host"]


@admin.register(VenueHealth)
class VenueHealthAdmin(ReadOnlyAdmin):
    list_display = ["venue", "live", "healthy", "detail", "checked_at", "consecutive_errors", "last_error_at", "last_latency_ms"]


admin.site.site_header = "ChronosX governance"
admin.site.site_title = "ChronosX"
