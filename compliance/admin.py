"""The audit trail in the admin: newest first, filtered by time, kind, actor and proposal,
payloads shown readably, and the chain verified on request (verify_audit permission), in the
background: the list shows the verification's progress, then its result and head hash."""

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, QueryDict
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from chronosx.admin import ReadOnlyAdmin
from compliance import tasks
from compliance.models import ComplianceJob
from compliance.services.jobs import chain_verify_job_request
from governance.roles import EXPORT_REPORTS, VERIFY_AUDIT, user_may
from ledger.models import AuditEvent
from ledger.selectors import audit_chain_head, audit_unchained_count

PAYLOAD_SHOWN = 160
# The session key holding the id of the chain verification this user started last.
VERIFY_JOB = "chronosx_chain_verify_job"


def payload_summary(payload: str) -> str:
    """`key=value` pairs of a payload on one line, cut to PAYLOAD_SHOWN characters."""
    try:
        body = json.loads(payload)
    except ValueError:
        return payload[:PAYLOAD_SHOWN]
    if isinstance(body, dict):
        text = ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v}" for k, v in body.items()
        )
    else:
        text = json.dumps(body, ensure_ascii=False)
    return text if len(text) <= PAYLOAD_SHOWN else text[: PAYLOAD_SHOWN - 1] + "…"


class ActorFilter(admin.SimpleListFilter):
    """Who wrote the event, by prefix (operator:, admin:, dashboard:, …): a DISTINCT over every
    actor of a long chain would be slow, the search box finds one actor exactly."""

    title = "actor"
    parameter_name = "actor_kind"

    def lookups(self, request, model_admin):
        return [(p, f"{p}…") for p in ("operator:", "admin:", "dashboard:", "agent:", "node:", "venue:", "exchange:", "governance", "quorum", "seed_demo")]

    def queryset(self, request, queryset):
        return queryset.filter(actor__startswith=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "created_at", "kind", "actor", "proposal_link", "summary", "short_hash"]
    list_filter = [("created_at", admin.DateFieldListFilter), "kind", ActorFilter]
    date_hierarchy = "created_at"
    search_fields = ["=proposal_id", "actor", "=hash", "kind"]
    ordering = ["-id"]  # newest first: ids follow the chain's order
    fields = ["seq", "created_at", "kind", "actor", "proposal_id", "payload_readable", "prev_hash", "hash"]
    readonly_fields = fields
    # The changelist's default COUNT(*) over a long chain is slow; the seq is the count.
    show_full_result_count = False
    list_per_page = 100

    @admin.display(description="proposal")
    def proposal_link(self, event):
        if not event.proposal_id:
            return "—"
        url = reverse("admin:ledger_auditevent_changelist") + f"?q={event.proposal_id}"
        return format_html('<a href="{}" title="every event of this proposal">{}</a>', url, str(event.proposal_id)[:8])

    @admin.display(description="payload")
    def summary(self, event):
        return payload_summary(event.payload)

    @admin.display(description="hash")
    def short_hash(self, event):
        return format_html('<code title="{}">{}…</code>', event.hash, event.hash[:12]) if event.hash else "not chained yet"

    @admin.display(description="payload")
    def payload_readable(self, event):
        try:
            text = json.dumps(json.loads(event.payload), indent=2, sort_keys=True, ensure_ascii=False)
        except ValueError:
            text = event.payload
        return format_html('<pre class="audit-payload" style="white-space:pre-wrap;margin:0">{}</pre>', text)

    def get_urls(self):
        verify = self.admin_site.admin_view(self.verify_view)
        return [path("verify/", verify, name="ledger_auditevent_verify"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        head = audit_chain_head()
        may_verify = user_may(request.user, VERIFY_AUDIT)
        job_id = request.session.get(VERIFY_JOB)
        extra_context = {
            **(extra_context or {}),
            "chain_head": {"seq": head[0], "hash": head[1]} if head else None,
            "chain_unchained": audit_unchained_count(),
            "may_verify": may_verify,
            "may_export": user_may(request.user, EXPORT_REPORTS),
            "verify_job": ComplianceJob.objects.filter(pk=job_id).first() if job_id and may_verify else None,
        }
        return super().changelist_view(request, extra_context)

    def verify_view(self, request):
        """POST: start walking the whole chain against the nodes' checkpoints, as `verify_audit`
        does, in the background; the list then shows its progress, its result and the head hash."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not user_may(request.user, VERIFY_AUDIT):
            raise PermissionDenied(f"{request.user.get_username()} may not verify the audit chain")
        job = chain_verify_job_request(user=request.user, actor=f"admin:{request.user.get_username()}")
        tasks.compliance_job_start(job.pk)
        request.session[VERIFY_JOB] = job.pk
        # Back to the list as it was filtered (only its query string is taken from the form).
        query = request.POST.get("query", "")
        url = reverse("admin:ledger_auditevent_changelist")
        return redirect(f"{url}?{QueryDict(query).urlencode()}" if query else url)
