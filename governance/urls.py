from django.urls import path

from governance import apis

urlpatterns = [
    path("proposals/", apis.ProposalListCreateApi.as_view(), name="proposals"),
    path("proposals/<str:proposal_id>/", apis.ProposalDetailApi.as_view(), name="proposal-detail"),
    path("health/", apis.HealthApi.as_view(), name="health"),
]
