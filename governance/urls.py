from django.urls import re_path

from governance import apis

# The trailing slash is optional: a redirect would drop a POST body.
urlpatterns = [
    re_path(r"^proposals/?$", apis.ProposalListCreateApi.as_view(), name="proposals"),
    re_path(r"^proposals/(?P<proposal_id>[^/]+)/?$", apis.ProposalDetailApi.as_view(), name="proposal-detail"),
    re_path(r"^health/?$", apis.HealthApi.as_view(), name="health"),
]
