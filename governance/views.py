"""The operator dashboard: one page, each panel an HTMX partial that refreshes itself."""

import uuid
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRedirect

from governance.selectors import dashboard as selectors

# (panel id, title, url name); the page lays them out in this order.
PANELS = [
    ("health", "System health", "dashboard-health"),
    ("nodes", "MPC nodes", "dashboard-nodes"),
    ("controls", "Trading state & circuit breakers", "dashboard-controls"),
    ("ruleset", "Governance rules in force", "dashboard-ruleset"),
    ("portfolio", "Portfolio (realized only)", "dashboard-portfolio"),
    ("proposals", "Proposal → decision → quorum → orders → fills", "dashboard-proposals"),
]
REFRESH_SECONDS = 3


def staff_required(view):
    """Active staff only. Anyone else goes to the admin login, the whole page, not a panel."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if user.is_active and user.is_staff:
            return view(request, *args, **kwargs)
        login_url = reverse("admin:login")
        if request.htmx:
            # Swapping a login form into a panel would hide that the session is gone.
            return HttpResponseClientRedirect(f"{login_url}?{urlencode({'next': reverse('dashboard')})}")
        return redirect_to_login(request.get_full_path(), login_url)

    return require_GET(never_cache(wrapper))


def _partial(request, template, **context):
    return render(request, f"governance/partials/{template}", {"now": timezone.now(), **context})


@staff_required
def dashboard(request):
    return render(
        request,
        "governance/dashboard.html",
        {
            "panels": [{"id": p, "title": t, "url": reverse(name)} for p, t, name in PANELS],
            "venue": selectors.venue_status(),
            "refresh_seconds": REFRESH_SECONDS,
        },
    )


@staff_required
def health_panel(request):
    return _partial(request, "health.html", health=selectors.health_status())


@staff_required
def nodes_panel(request):
    return _partial(request, "nodes.html", **selectors.nodes_status())


@staff_required
def controls_panel(request):
    return _partial(request, "controls.html", **selectors.controls_status())


@staff_required
def ruleset_panel(request):
    return _partial(request, "ruleset.html", current=selectors.ruleset_status())


@staff_required
def portfolio_panel(request):
    return _partial(request, "portfolio.html", portfolio=selectors.portfolio_status())


@staff_required
def proposals_panel(request):
    selected = request.GET.get("selected", "")
    try:
        selected = str(uuid.UUID(selected)) if selected else ""
    except ValueError:
        selected = ""
    return _partial(
        request,
        "proposals.html",
        rows=selectors.proposals_trace(selected=selected),
        selected=selected,
        venue=selectors.venue_status(),
    )
