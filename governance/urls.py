from django.urls import re_path

from governance.apis import health, portfolio, proposals

# The trailing slash is optional: a redirect would drop a POST body.
urlpatterns = [
    re_path(r"^proposals/?$", proposals.ProposalListCreateApi.as_view(), name="proposals"),
    re_path(r"^proposals/(?P<proposal_id>[^/]+)/?$", proposals.ProposalDetailApi.as_view(), name="proposal-detail"),
    re_path(r"^portfolio/?$", portfolio.PortfolioApi.as_view(), name="portfolio"),
    re_path(r"^portfolio/realized/?$", portfolio.RealizedPnlApi.as_view(), name="portfolio-realized"),
    re_path(r"^health/?$", health.HealthApi.as_view(), name="health"),
]
