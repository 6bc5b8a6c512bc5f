"""The admin's export page (compliance role): the same service as `manage.py export`."""

import os
import tempfile
from pathlib import Path

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from compliance.forms import ExportForm
from compliance.services import CONTENT_TYPES, ExportError, export_period, export_run
from governance.roles import EXPORT_REPORTS, user_may


def export_page(request):
    """GET: the form. POST: the file, written to a temporary file (rows streamed, never held
    in memory), audited, then sent and removed."""
    if not user_may(request.user, EXPORT_REPORTS):
        raise PermissionDenied(f"{request.user.get_username()} may not export reports")
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            period = export_period(start=data["start"], end=data["end"])
            with tempfile.TemporaryDirectory(prefix="chronosx-export-") as folder:
                stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
                name = f"chronosx-{data['kind']}-{period.since.date()}-{stamp}.{data['fmt']}"
                result = export_run(
                    kind=data["kind"],
                    fmt=data["fmt"],
                    period=period,
                    strategy=data["strategy"] or None,
                    out=Path(folder) / name,
                    actor=f"admin:{request.user.get_username()}",
                )
                handle = open(result.path, "rb")
                os.unlink(result.path)  # the open handle keeps it until the response is sent
        except ExportError as exc:
            form.add_error(None, str(exc))
        else:
            response = FileResponse(handle, as_attachment=True, filename=name, content_type=CONTENT_TYPES[result.fmt])
            response["X-Export-Count"] = f"{result.unit}: {result.count}"
            response["X-Export-SHA256"] = result.sha256
            return response
    context = {
        **admin.site.each_context(request),
        "title": "Compliance exports",
        "form": form,
    }
    return TemplateResponse(request, "compliance/export.html", context, status=400 if form.errors else 200)
