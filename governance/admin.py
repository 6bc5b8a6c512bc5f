import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path

from chronosx.admin import GuardedAdmin, ReadOnlyAdmin
from governance import roles, tasks
from governance.access import TwoFactorLoginForm
from governance.models import (
    Agent,
    AssetLimit,
    CircuitBreaker,
    Decision,
    ForceRequest,
    ImpactReport,
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
from governance.roles import (
    APPROVE_FORCE,
    CONTROL_TRADING,
    EDIT_RULESET,
    EXPORT_REPORTS,
    REQUEST_FORCE,
    RESET_BREAKER,
    TRIP_BREAKER,
    user_may,
)
from governance.parameters import ASSET_PARAMETERS, ASSETS, BUDGETS
from governance.selectors.controls import ruleset_current
from governance.selectors.forcing import force_open, force_summary
from governance.services import controls, forcing, impact, rulesets
from ledger.services import audit_record

# Changed proposals listed on a ruleset's page (the report holds them all).
PROPOSALS_SHOWN = 200


def actor_of(request) -> str:
    return f"admin:{request.user.get_username()}"


class AuditedAdmin(GuardedAdmin):
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


class RiskConfigurationAdmin(AuditedAdmin):
    """Instruments, strategies and agents are inputs of the rules (an instrument's `enabled` is
    a check; an agent's strategies bound what it may propose): whoever may draft rulesets (risk
    officers) changes them, everyone else reads. Nothing is deleted: proposals, fills and the
    ledger refer to them, so an instrument is disabled and an agent deactivated instead."""

    def has_add_permission(self, request):
        return user_may(request.user, EDIT_RULESET)

    def has_change_permission(self, request, obj=None):
        return user_may(request.user, EDIT_RULESET)

    def has_delete_permission(self, request, obj=None):
        return False


PAUSE_FIELDS = ["paused", "pause_reason", "paused_by", "paused_at"]


class PausableAdmin(RiskConfigurationAdmin):
    """Pausing and resuming (operators and risk officers, with a reason) is an action that goes
    through the audited service; the pause fields are never edited in the form."""

    actions = ["pause", "resume"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *PAUSE_FIELDS]

    def has_control_trading_permission(self, request):
        return user_may(request.user, CONTROL_TRADING)

    @admin.action(description="Pause the selected (their proposals are blocked)", permissions=["control_trading"])
    def pause(self, request, queryset):
        return self._with_reason(request, queryset, verb="pause")

    @admin.action(description="Resume the selected", permissions=["control_trading"])
    def resume(self, request, queryset):
        return self._with_reason(request, queryset, verb="resume")

    def _with_reason(self, request, queryset, *, verb):
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        items = list(queryset.order_by("pk"))
        if not form.is_valid():
            return reason_page(
                self, request, "admin/governance/pause_reason.html", form=form, selected=items, action=verb,
                title=f"{verb.capitalize()} {self.model._meta.verbose_name_plural}", verb=verb,
            )
        reason, pausing = form.cleaned_data["reason"], verb == "pause"
        for item in items:
            if item.paused == pausing:
                self.message_user(request, f"{item}: already {'paused' if pausing else 'running'}.", level=messages.WARNING)
                continue
            controls.pause_set(target=item, paused=pausing, actor=actor_of(request), reason=reason)
            self.message_user(request, f"{item}: {'paused' if pausing else 'resumed'} ({reason}).")
        return None


@admin.register(Instrument)
class InstrumentAdmin(PausableAdmin):
    list_display = ["symbol", "base_asset", "quote_asset", "min_quantity", "quantity_step", "enabled", "paused", "pause_reason"]


@admin.register(Strategy)
class StrategyAdmin(PausableAdmin):
    list_display = ["slug", "name", "created_at", "paused", "pause_reason"]


@admin.register(Agent)
class AgentAdmin(RiskConfigurationAdmin):
    list_display = ["name", "token_prefix", "is_active", "created_at"]
    fields = ["name", "token_prefix", "strategies", "is_active"]
    readonly_fields = ["token_prefix"]

    def has_add_permission(self, request):
        return False  # tokens are issued by `manage.py create_agent`, shown once


class LimitInlineMixin:
    """A draft's asset limits and strategy budgets: edited with it (through the service), by
    those who may edit drafts; a published version's are read-only."""

    extra = 0

    def _may_edit(self, request, obj):
        return (obj is None or not obj.is_published) and roles.user_may(request.user, roles.EDIT_RULESET)

    def has_add_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_edit(request, obj)


class AssetLimitInline(LimitInlineMixin, admin.TabularInline):
    model = AssetLimit


class StrategyBudgetInline(LimitInlineMixin, admin.TabularInline):
    model = StrategyBudget


def _username(request) -> str:
    return request.user.get_username()


@admin.register(Ruleset)
class RulesetAdmin(AuditedAdmin):
    """Risk officers make drafts, edit and submit them; another risk officer approves one,
    having seen its diff against the version in force and its impact replay (four eyes).
    Every write goes through governance.services.rulesets; a published version is read-only,
    and nothing is written by a GET."""

    change_form_template = "admin/governance/ruleset/change_form.html"
    list_display = ["version", "status", "mode", "quorum_required", "created_by", "submitted_by", "published_at", "published_by"]
    list_filter = ["status", "mode"]
    inlines = [AssetLimitInline, StrategyBudgetInline]
    actions = ["new_draft_from"]
    record_fields = ["created_at", "created_by", "editors", "submitted_at", "submitted_by", "published_at", "published_by"]
    fields = ["version", "status", *Ruleset.PARAMETERS, "notes", *record_fields]
    readonly_fields = ["version", "status", *record_fields]

    # --- who may do what ---------------------------------------------------------------

    def has_add_permission(self, request):
        return roles.user_may(request.user, roles.EDIT_RULESET)

    def has_change_permission(self, request, obj=None):
        return (obj is None or not obj.is_published) and roles.user_may(request.user, roles.EDIT_RULESET)

    def has_delete_permission(self, request, obj=None):
        # Drafts one by one, from their page (no bulk delete); published versions never.
        return obj is not None and not obj.is_published and roles.user_may(request.user, roles.EDIT_RULESET)

    def has_edit_ruleset_permission(self, request):
        return roles.user_may(request.user, roles.EDIT_RULESET)

    def get_fields(self, request, obj=None):
        return [*self.fields, "params"] if obj is not None and obj.is_published else self.fields

    # --- making drafts: only by POST ----------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        """GET shows what a new draft would be copied from; only the POST makes one."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            source_id = request.POST.get("source", "")
            if source_id and not source_id.isdigit():
                return HttpResponseBadRequest("source: a ruleset id")
            source = get_object_or_404(Ruleset, pk=source_id) if source_id else ruleset_current()
            draft = rulesets.ruleset_new_draft(source=source, actor=actor_of(request), user=_username(request))
            origin = f"v{source.version}" if source else "the defaults"
            self.message_user(request, f"Draft v{draft.version} created from {origin}.")
            return redirect("admin:governance_ruleset_change", draft.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "New ruleset draft",
            "in_force": ruleset_current(),
            "sources": Ruleset.objects.order_by("-version"),
        }
        return TemplateResponse(request, "admin/governance/ruleset/add_draft.html", context)

    @admin.action(description="New draft version from the selected ruleset (a rollback, from an older one)", permissions=["edit_ruleset"])
    def new_draft_from(self, request, queryset):
        for ruleset in queryset:
            draft = rulesets.ruleset_new_draft(source=ruleset, actor=actor_of(request), user=_username(request))
            self.message_user(request, f"Draft v{draft.version} created from v{ruleset.version}.")

    # --- editing a draft: one service call for the form and its inlines -------------------

    def save_model(self, request, obj, form, change):
        """Nothing here: save_related writes the form and its inlines in one ruleset_edit."""

    def save_related(self, request, form, formsets, change):
        ruleset = form.instance
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in Ruleset.PARAMETERS}
        removed, updated = {}, {}
        for formset in formsets:
            self._row_changes(formset, removed, updated)
        notes = form.cleaned_data["notes"] if "notes" in form.changed_data else None
        try:
            changed = rulesets.ruleset_edit(
                ruleset_id=ruleset.pk, changes={**changes, **removed, **updated}, notes=notes,
                actor=actor_of(request), user=_username(request),
            )
        except rulesets.RulesetError as exc:  # published since the page was loaded: nothing written
            raise PermissionDenied(str(exc)) from exc
        request.ruleset_changed = changed
        if changed and ruleset.status == Ruleset.Status.SUBMITTED:
            self.message_user(
                request, f"v{ruleset.version} was submitted: this edit sent it back to draft. Submit it again.", messages.WARNING
            )

    @staticmethod
    def _row_changes(formset, removed: dict, updated: dict) -> None:
        """An inline's rows as parameter changes: a removed row is `assets.SYMBOL` (or
        `strategy_budgets.SLUG`) -> None; a new or changed row sets its values."""
        is_asset = formset.model is AssetLimit
        key_field = "instrument" if is_asset else "strategy"
        key_model = Instrument if is_asset else Strategy
        scope = ASSETS if is_asset else BUDGETS

        def key_of(obj):
            return obj.symbol if is_asset else obj.slug

        for row in formset.forms:
            existing = row.instance.pk is not None
            old_key = key_of(key_model.objects.get(pk=row.initial[key_field])) if existing else None
            if formset._should_delete_form(row):
                if existing:
                    removed[f"{scope}.{old_key}"] = None
                continue
            if not row.has_changed():
                continue
            new_key = key_of(row.cleaned_data[key_field])
            if existing and old_key != new_key:
                removed[f"{scope}.{old_key}"] = None
            if is_asset:
                for name in ASSET_PARAMETERS:
                    updated[f"{scope}.{new_key}.{name}"] = row.cleaned_data[name]
            else:
                updated[f"{scope}.{new_key}"] = row.cleaned_data["max_exposure"]

    def construct_change_message(self, request, form, formsets, add=False):
        return [{"changed": {"fields": sorted(getattr(request, "ruleset_changed", {}))}}]

    def delete_model(self, request, obj):
        rulesets.ruleset_discard(ruleset_id=obj.pk, actor=actor_of(request))

    # --- the review: diff, impact replay, submit, approve --------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/submit/", view(self.submit_view), name="governance_ruleset_submit"),
            path("<int:pk>/approve/", view(self.approve_view), name="governance_ruleset_approve"),
            path("<int:pk>/impact/", view(self.impact_view), name="governance_ruleset_impact"),
            *super().get_urls(),
        ]

    def review(self, request, ruleset: Ruleset) -> dict:
        """What the page shows above the form, and which buttons it offers this user."""
        user, username = request.user, _username(request)
        params = rulesets.ruleset_params_of(ruleset)
        report = impact.impact_report_latest(ruleset=ruleset)
        report_fresh = report is not None and report.params_digest == rulesets.params_digest(params)
        submitted = ruleset.status == Ruleset.Status.SUBMITTED
        may_approve = submitted and roles.user_may(user, roles.APPROVE_RULESET)
        refusal = rulesets.four_eyes_refusal(ruleset=ruleset, user=username) if may_approve else None
        return {
            "ruleset": ruleset,
            "in_force": ruleset_current(),
            "diff": rulesets.ruleset_diff(ruleset=ruleset),
            "report": report,
            "report_stale": report is not None and report.params_digest != "" and not report_fresh,
            "report_shown": report.result["proposals"][:PROPOSALS_SHOWN] if report and report.result else [],
            "may_submit": ruleset.status == Ruleset.Status.DRAFT and roles.user_may(user, roles.EDIT_RULESET),
            "may_replay": roles.user_may(user, roles.EDIT_RULESET) or roles.user_may(user, roles.APPROVE_RULESET),
            "may_draft_from": roles.user_may(user, roles.EDIT_RULESET),
            "four_eyes_refusal": refusal,
            "needs_replay": may_approve and not refusal and not (report_fresh and report.status == ImpactReport.Status.DONE),
            "may_approve": may_approve and not refusal and report_fresh and report.status == ImpactReport.Status.DONE,
            "default_days": impact.DEFAULT_DAYS,
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        ruleset = self.get_object(request, object_id)
        if ruleset is not None and self.has_view_or_change_permission(request, ruleset):
            extra_context = {**(extra_context or {}), "review": self.review(request, ruleset)}
        return super().change_view(request, object_id, form_url, extra_context)

    def submit_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not roles.user_may(request.user, roles.EDIT_RULESET):
            raise PermissionDenied
        ruleset = get_object_or_404(Ruleset, pk=pk)
        try:
            rulesets.ruleset_submit(ruleset_id=ruleset.pk, actor=actor_of(request), user=_username(request))
            self.message_user(request, f"v{ruleset.version} submitted: another risk officer may now approve it.")
        except ValidationError as exc:
            self.message_user(request, f"v{ruleset.version} not submitted: {'; '.join(exc.messages)}", messages.ERROR)
        except rulesets.RulesetError as exc:
            self.message_user(request, f"v{ruleset.version} not submitted: {exc}", messages.ERROR)
        return redirect("admin:governance_ruleset_change", ruleset.pk)

    def approve_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not roles.user_may(request.user, roles.APPROVE_RULESET):
            raise PermissionDenied
        ruleset = get_object_or_404(Ruleset, pk=pk)
        review = self.review(request, ruleset)
        if review["four_eyes_refusal"]:
            return HttpResponseForbidden(f"four-eyes: {review['four_eyes_refusal']}", content_type="text/plain")
        if review["needs_replay"]:
            self.message_user(
                request, f"v{ruleset.version} not approved: run the impact replay of this content first, and read it.", messages.ERROR
            )
            return redirect("admin:governance_ruleset_change", ruleset.pk)
        try:
            rulesets.ruleset_approve(ruleset_id=ruleset.pk, actor=actor_of(request), user=_username(request))
        except rulesets.FourEyesError as exc:
            return HttpResponseForbidden(f"four-eyes: {exc}", content_type="text/plain")
        except (rulesets.RulesetError, ValidationError) as exc:
            text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.message_user(request, f"v{ruleset.version} not approved: {text}", messages.ERROR)
            return redirect("admin:governance_ruleset_change", ruleset.pk)
        self.message_user(request, f"v{ruleset.version} approved and published: it is in force from now.")
        return redirect("admin:governance_ruleset_change", ruleset.pk)

    def impact_view(self, request, pk):
        """POST: start an impact replay of this version. GET: the report's panel (the page polls it)."""
        ruleset = get_object_or_404(Ruleset, pk=pk)
        if request.method == "POST":
            if not (roles.user_may(request.user, roles.EDIT_RULESET) or roles.user_may(request.user, roles.APPROVE_RULESET)):
                raise PermissionDenied
            days = request.POST.get("days") or str(impact.DEFAULT_DAYS)
            try:
                with transaction.atomic():
                    report = impact.impact_request(ruleset=ruleset, days=int(days) if days.isdigit() else 0, actor=actor_of(request))
                    tasks.impact_replay_start(report.pk)
                self.message_user(request, f"Impact replay of v{ruleset.version} over the last {report.days} days started.")
            except ValueError as exc:
                self.message_user(request, f"Impact replay not started: {exc}", messages.ERROR)
            return redirect("admin:governance_ruleset_change", ruleset.pk)
        if not self.has_view_or_change_permission(request, ruleset):
            raise PermissionDenied
        review = self.review(request, ruleset)
        response = TemplateResponse(request, "admin/governance/ruleset/impact_panel.html", {"review": review})
        finished = review["report"] is not None and review["report"].status in (ImpactReport.Status.DONE, ImpactReport.Status.FAILED)
        if request.headers.get("HX-Request") and finished:
            response["HX-Refresh"] = "true"  # a finished replay changes what the page offers (Approve)
        return response


class TradingStateForm(forms.ModelForm):
    class Meta:
        model = TradingState
        fields = ["state", "reason"]

    def clean_reason(self):
        reason = (self.cleaned_data.get("reason") or "").strip()
        if not reason:
            raise ValidationError("say why")
        return reason


@admin.register(TradingState)
class TradingStateAdmin(GuardedAdmin):
    """The global trading state. Operators and risk officers change it, always with a reason,
    through the same audited service as the command; everyone else reads."""

    form = TradingStateForm
    list_display = ["state", "reason", "changed_by", "changed_at"]
    fields = ["state", "reason", "changed_by", "changed_at"]
    readonly_fields = ["changed_by", "changed_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return user_may(request.user, CONTROL_TRADING)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Through the service, so the state is locked and audited like the command's.
        controls.trading_set(state=obj.state, actor=actor_of(request), reason=obj.reason)

    actions = ["kill_switch"]

    def has_control_trading_permission(self, request):
        return user_may(request.user, CONTROL_TRADING)

    @admin.action(description="Kill switch: halt and cancel every open order", permissions=["control_trading"])
    def kill_switch(self, request, queryset):
        """A confirmation page asks why; its POST halts (audited) and, once that commits, the
        router cancels every resting order (the exchange's cancel stage)."""
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            return reason_page(
                self, request, "admin/governance/tradingstate/kill.html", form=form, selected=list(queryset),
                action="kill_switch", title="Kill switch", state=TradingState.objects.filter(pk=1).first(),
            )
        state = controls.trading_kill(actor=actor_of(request), reason=form.cleaned_data["reason"])
        self.message_user(request, f"Kill switch: trading halted ({state.reason}); the router is cancelling every open order.")
        return None


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


def reason_page(model_admin, request, template, *, form, selected, action, title, **context) -> TemplateResponse:
    """The page an admin action shows first (templates/admin/governance/reason_form.html): what it
    will do to the selected objects, and the reason it asks for; its POST confirms the action."""
    return TemplateResponse(
        request,
        template,
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "opts": model_admin.model._meta,
            "action": request.POST.get("action", action),
            "selected": selected,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            **context,
        },
    )


# Automatic trips are recorded under the tripping component's name (exchange:breakers);
# operators' under the door they came through.
OPERATOR_DOORS = ("admin:", "dashboard:", "operator:")


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(GuardedAdmin):
    """Operators and risk officers trip and reset breakers, each time with a reason: the
    action asks for it on a confirmation page. Nothing else about a breaker is edited here."""

    list_display = ["name", "tripped", "reason", "since", "source"]
    list_filter = ["tripped"]
    readonly_fields = ["name", "tripped", "reason", "since", "changed_by"]
    actions = ["trip", "reset"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_trip_breaker_permission(self, request):
        return user_may(request.user, TRIP_BREAKER)

    def has_reset_breaker_permission(self, request):
        return user_may(request.user, RESET_BREAKER)

    @admin.display(description="last changed by")
    def source(self, breaker):
        if not breaker.changed_by:
            return "—"
        automatic = not breaker.changed_by.startswith(OPERATOR_DOORS)
        return f"{breaker.changed_by} (automatic)" if automatic else breaker.changed_by

    @admin.action(description="Trip the selected breakers (routing stops)", permissions=["trip_breaker"])
    def trip(self, request, queryset):
        return self._with_reason(request, queryset, verb="trip", change=controls.breaker_trip)

    @admin.action(description="Reset the selected breakers", permissions=["reset_breaker"])
    def reset(self, request, queryset):
        return self._with_reason(request, queryset, verb="reset", change=controls.breaker_reset)

    def _with_reason(self, request, queryset, *, verb, change):
        """First the confirmation page asking why; its POST (with `confirm`) then changes each
        breaker that is not yet in that state, each through the audited service."""
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            return reason_page(
                self, request, "admin/governance/circuitbreaker/reason.html", form=form,
                selected=list(queryset.order_by("name")), action=verb, title=f"{verb.capitalize()} circuit breakers",
                verb=verb,
            )
        reason, done = form.cleaned_data["reason"], "tripped" if verb == "trip" else "reset"
        for breaker in queryset.order_by("name"):
            if breaker.tripped == (verb == "trip"):
                self.message_user(request, f"{breaker.name}: already {done}.", level=messages.WARNING)
                continue
            try:
                change(name=breaker.name, actor=actor_of(request), reason=reason)
            except ValueError as exc:  # a loss-limit breaker: its reset takes four eyes
                self.message_user(request, f"{breaker.name}: {exc}", level=messages.ERROR)
                continue
            self.message_user(request, f"{breaker.name}: {done} ({reason}).")
        return None


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


class ForceRequestInline(admin.TabularInline):
    """The proposal's force-execute requests: who asked and why, who granted it, and the
    record's digest the nodes signed over. Written only by governance.services.forcing."""

    model = ForceRequest
    can_delete = False
    readonly_fields = ["status", "requested_by", "requested_at", "reason", "expires_at", "approved_by", "approved_at",
                       "overrides", "digest", "closed_by", "close_reason"]
    fields = readonly_fields
    extra = 0
    verbose_name = "force-execute request"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Proposal)
class ProposalAdmin(ReadOnlyAdmin):
    """Proposals are read here. Operators and risk officers ask for a blocked one to be executed
    anyway (force-execute, with a reason); a different risk officer grants it. Both are actions
    offered only to the roles that may take them."""

    list_display = ["id", "received_at", "strategy", "instrument", "side", "quantity", "intent", "status", "outcome", "forced"]
    list_filter = ["status", "strategy", "instrument", "intent"]
    search_fields = ["id", "idempotency_key"]
    inlines = [DecisionInline, VoteInline, ForceRequestInline]
    actions = ["export_csv", "request_force", "approve_force"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("force_requests")

    def has_export_reports_permission(self, request):
        return user_may(request.user, EXPORT_REPORTS)

    def has_request_force_permission(self, request):
        return user_may(request.user, REQUEST_FORCE)

    def has_approve_force_permission(self, request):
        return user_may(request.user, APPROVE_FORCE)

    @admin.display(description="decision")
    def outcome(self, proposal):
        decision = getattr(proposal, "decision", None)
        return decision.outcome if decision else "—"

    @admin.display(description="forced", boolean=True)
    def forced(self, proposal):
        return force_summary(proposal=proposal)["forced"]

    @admin.action(description="Request force-execute of the selected blocked proposals (a risk officer approves)",
                  permissions=["request_force"])
    def request_force(self, request, queryset):
        """First a page asking why; its POST (with `confirm`) then requests each, through the service."""
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            return reason_page(
                self, request, "admin/governance/proposal/force_request.html", form=form,
                selected=list(queryset.select_related("decision", "instrument", "strategy")), action="request_force",
                title="Request force-execute",
            )
        for proposal in queryset.order_by("received_at"):
            try:
                force = forcing.force_request(
                    proposal_id=proposal.id, user=request.user, reason=form.cleaned_data["reason"], actor=actor_of(request)
                )
            except forcing.ForceRefused as exc:
                self.message_user(request, f"{proposal.id}: not requested: {exc}", messages.ERROR)
                continue
            self.message_user(
                request, f"{proposal.id}: force-execute requested; another risk officer may approve it until {force.expires_at:%H:%M:%S} UTC."
            )
        return None

    @admin.action(description="Approve the force-execute requested for the selected proposals (not your own)",
                  permissions=["approve_force"])
    def approve_force(self, request, queryset):
        username = _username(request)
        own = [p.id for p in queryset if (f := force_open(proposal_id=p.id)) is not None and f.requested_by == username]
        if own:
            # Four eyes: nothing is approved when any of them is the user's own request.
            return HttpResponseForbidden(
                f"four-eyes: {username} requested the force of {', '.join(map(str, own))}; another risk officer must approve it",
                content_type="text/plain",
            )
        for proposal in queryset.order_by("received_at"):
            try:
                force = forcing.force_approve(proposal_id=proposal.id, user=request.user, actor=actor_of(request))
            except forcing.ForceRefused as exc:
                self.message_user(request, f"{proposal.id}: not approved: {exc}", messages.ERROR)
                continue
            self.message_user(
                request, f"{proposal.id}: force-execute approved (requested by {force.requested_by}); the nodes vote on it now."
            )
        return None

    @admin.action(description="Export selected as CSV (compliance report)", permissions=["export_reports"])
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
# Asks risk officers for their two-factor code when CHRONOSX_REQUIRE_2FA is on.
admin.site.login_form = TwoFactorLoginForm
