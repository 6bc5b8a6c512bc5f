from django.urls import path, re_path

from governance import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/partials/banner/", views.banner_panel, name="dashboard-banner"),
    path("dashboard/partials/health/", views.health_panel, name="dashboard-health"),
    path("dashboard/partials/nodes/", views.nodes_panel, name="dashboard-nodes"),
    path("dashboard/partials/controls/", views.controls_panel, name="dashboard-controls"),
    path("dashboard/partials/ruleset/", views.ruleset_panel, name="dashboard-ruleset"),
    path("dashboard/partials/portfolio/", views.portfolio_panel, name="dashboard-portfolio"),
    path("dashboard/partials/allocation/", views.allocation_panel, name="dashboard-allocation"),
    path("dashboard/partials/decisions/", views.decisions_panel, name="dashboard-decisions"),
    path("dashboard/partials/activity/", views.activity_panel, name="dashboard-activity"),
    path("dashboard/partials/proposals/", views.proposals_panel, name="dashboard-proposals"),
    re_path(r"^dashboard/breakers/(?P<action>trip|reset)/$", views.breaker_action, name="dashboard-breaker"),
    re_path(r"^dashboard/trading/(?P<action>enable|reduce-only|halt|kill)/$", views.trading_action, name="dashboard-trading"),
    re_path(r"^dashboard/pauses/(?P<action>pause|resume)/$", views.pause_action, name="dashboard-pause"),
]
