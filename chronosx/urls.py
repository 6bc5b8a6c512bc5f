from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from chronosx import errors, metrics
from compliance.views import export_page, job_download, job_page

urlpatterns = [
    path("api/v1/", include("governance.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path("admin/compliance/export/", admin.site.admin_view(export_page), name="compliance-export"),
    path("admin/compliance/jobs/<int:pk>/", admin.site.admin_view(job_page), name="compliance-job"),
    path("admin/compliance/jobs/<int:pk>/file/", admin.site.admin_view(job_download), name="compliance-job-file"),
    path("admin/", admin.site.urls),
    # Loopback only (chronosx/metrics.py); nginx does not forward it.
    path("metrics", metrics.metrics_view, name="metrics"),
    path("", include("governance.dashboard_urls")),
]

handler404 = errors.json_or_html_404
handler500 = errors.json_or_html_500
