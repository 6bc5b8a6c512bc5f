"""The admin's export page (compliance role) and its background jobs: the same service as
`manage.py export`, run by a worker while the page shows its progress, then the file.

Every export goes through a job, however small its range: one path to the file, and no web
request held for as long as an export takes (a small one is done before the page first polls).
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse

from compliance import tasks
from compliance.forms import ExportForm
from compliance.models import ComplianceJob
from compliance.services.exports import CONTENT_TYPES, ExportError
from compliance.services.jobs import export_job_request, job_file_hand_out, job_user_may
from governance.roles import EXPORT_REPORTS, user_may

RECENT_JOBS = 20


def _actor(request) -> str:
    return f"admin:{request.user.get_username()}"


def export_page(request):
    """GET: the form and the recent exports. POST: a queued export job, then its page."""
    if not user_may(request.user, EXPORT_REPORTS):
        raise PermissionDenied(f"{request.user.get_username()} may not export reports")
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = export_job_request(
                user=request.user, actor=_actor(request), kind=data["kind"], fmt=data["fmt"],
                start=data["start"], end=data["end"], strategy=data["strategy"] or None,
            )
        except ExportError as exc:
            form.add_error(None, str(exc))
        else:
            tasks.compliance_job_start(job.pk)
            return redirect("compliance-job", job.pk)
    context = {
        **admin.site.each_context(request),
        "title": "Compliance exports",
        "form": form,
        "jobs": ComplianceJob.objects.filter(task=ComplianceJob.Task.EXPORT)[:RECENT_JOBS],
    }
    return TemplateResponse(request, "compliance/export.html", context, status=400 if form.errors else 200)


def _job_for(request, pk) -> ComplianceJob:
    job = get_object_or_404(ComplianceJob, pk=pk)
    if not job_user_may(user=request.user, job=job):
        raise PermissionDenied(f"{request.user.get_username()} may not see compliance job {pk}")
    return job


def job_page(request, pk):
    """A job's progress, then its file or result; htmx polls the panel alone until it finishes."""
    job = _job_for(request, pk)
    if request.htmx:
        return TemplateResponse(request, "compliance/partials/job.html", {"job": job})
    title = "Export" if job.task == ComplianceJob.Task.EXPORT else "Audit chain verification"
    context = {**admin.site.each_context(request), "title": f"{title} #{job.pk}", "job": job}
    return TemplateResponse(request, "compliance/job.html", context)


def job_download(request, pk):
    """The finished export's file, to a user whose role may export."""
    job = _job_for(request, pk)
    path = job_file_hand_out(job=job, actor=_actor(request))
    if path is None:
        raise Http404(f"export #{job.pk} has no file to download ({job.status})")
    response = FileResponse(
        open(path, "rb"), as_attachment=True, filename=job.result["filename"], content_type=CONTENT_TYPES[job.params["fmt"]]
    )
    response["X-Export-Count"] = f"{job.result['unit']}: {job.result['count']}"
    response["X-Export-SHA256"] = job.result["sha256"]
    return response
