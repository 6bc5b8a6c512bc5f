from django.urls import re_path

from governance.apis import health, live, portfolio, receipts

# The trailing slash is optional: a redirect would drop a POST body.
urlpatterns = [
    re_path(r"^proposals/?$", live.proposals_endpoint, name="proposals"),
    re_path(r"^proposals/(?P<proposal_id>[^/]+)/receipt/?$", receipts.ReceiptApi.as_view(), name="proposal-receipt"),
    re_path(r"^proposals/(?P<proposal_id>[^/]+)/?$", live.proposal_detail_endpoint, name="proposal-detail"),
    re_path(r"^portfolio/?$", portfolio.PortfolioApi.as_view(), name="portfolio"),
    re_path(r"^portfolio/realized/?$", portfolio.RealizedPnlApi.as_view(), name="portfolio-realized"),
    re_path(r"^stream/?$", live.StreamApi.as_view(), name="stream"),
    re_path(r"^node-keys/?$", receipts.NodeKeysApi.as_view(), name="node-keys"),
    re_path(r"^health/?$", health.HealthApi.as_view(), name="health"),
]
