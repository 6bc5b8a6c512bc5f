from django.urls import path

from ledger import apis

urlpatterns = [
    path("portfolio/", apis.PortfolioApi.as_view(), name="portfolio"),
    path("portfolio/realized/", apis.RealizedPnlApi.as_view(), name="portfolio-realized"),
]
