from django.urls import re_path

from ledger import apis

urlpatterns = [
    re_path(r"^portfolio/?$", apis.PortfolioApi.as_view(), name="portfolio"),
    re_path(r"^portfolio/realized/?$", apis.RealizedPnlApi.as_view(), name="portfolio-realized"),
]
