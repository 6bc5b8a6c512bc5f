"""The operator dashboard: one page, each panel an HTMX partial that refreshes itself."""

import uuid
from datetime import date
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from governance.access import POLL_HEADER
from governance.models import CircuitBreaker, Instrument, Strategy
from governance.roles import CONTROL_TRADING, RESET_BREAKER, TRIP_BREAKER, require, user_may
from governance.roles import PermissionDenied as RoleRefused
from governance.selectors import dashboard as selectors
from governance.selectors.controls import ruleset_current, trading_state
from governance.services import controls

# (panel id, title, url name); the page lays them out in this order.
PANELS = [
    ("health", "System health", "dashboard-health"),
    ("nodes", "MPC nodes", "dashboard-nodes"),
    ("controls", "Trading state, pauses & circuit breakers", "dashboard-controls"),
    ("ruleset", "Governance rules in force", "dashboard-ruleset"),
    ("portfolio", "Portfolio (realized only)", "dashboard-portfolio"),
    ("allocation", "Allocation by strategy: budget, use, realized PnL, drawdown", "dashboard-allocation"),
    ("decisions", "Decisions over time, by outcome", "dashboard-decisions"),
    ("activity", "Executions: live and sandbox", "dashboard-activity"),
    ("proposals", "Proposal → decision → quorum → orders → fills", "dashboard-proposals"),
]
REFRESH_SECONDS = 3
# What each breaker button needs, and the audited service it calls.
BREAKER_ACTIONS = {
    "trip": (TRIP_BREAKER, controls.breaker_trip),
    "reset": (RESET_BREAKER, controls.breaker_reset),
}

# The trading-state buttons and the audited service each calls (all need control_trading).
TRADING_ACTIONS = {
    "enable": controls.trading_enable,
    "reduce-only": controls.trading_reduce_only,
    "halt": controls.trading_halt,
    "kill": controls.trading_kill,  # halts; the router then cancels every open order
}


def staff_only(view):
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

    return wrapper


def staff_required(view):
    """A page or panel: staff only, GET only, never cached."""
    return require_GET(never_cache(staff_only(view)))


def _partial(request, template, **context):
    return render(request, f"governance/partials/{template}", {"now": timezone.now(), **context})


@staff_required
def dashboard(request):
    return render(
        request,
        "governance/dashboard.html",
        {
            "panels": [{"id": p, "title": t, "url": reverse(name)} for p, t, name in PANELS],
            "trace_choices": selectors.trace_choices(),
            "venue": selectors.venue_status(),
            "refresh_seconds": REFRESH_SECONDS,
            "poll_header": POLL_HEADER,
            "breaker_names": list(CircuitBreaker.objects.order_by("name").values_list("name", flat=True)),
            "breaker_actions": [a for a, (permission, _) in BREAKER_ACTIONS.items() if user_may(request.user, permission)],
            "trading_actions": list(TRADING_ACTIONS) if user_may(request.user, CONTROL_TRADING) else [],
            "pause_targets": _pause_targets(),
            "trading": trading_state(),
        },
    )


def _pause_targets() -> list[tuple[str, str]]:
    """(value, label) of everything that can be paused: strategies, then instruments."""
    strategies = [(f"strategy:{slug}", f"strategy {slug}") for slug in Strategy.objects.order_by("slug").values_list("slug", flat=True)]
    instruments = [(f"instrument:{s}", f"instrument {s}") for s in Instrument.objects.order_by("symbol").values_list("symbol", flat=True)]
    return strategies + instruments


def _control_refusal(request, action: str):
    """403 unless the user may control trading; 400 without a reason. None when all is well."""
    try:
        require(request.user, CONTROL_TRADING, action)
    except RoleRefused as exc:
        return HttpResponseForbidden(f"permission denied: {exc}", content_type="text/plain")
    reason = request.POST.get("reason", "").strip()
    if not reason or len(reason) > 500:
        return HttpResponseBadRequest("give a reason (at most 500 characters)", content_type="text/plain")
    return None


@require_POST
@never_cache
@staff_only
def trading_action(request, action):
    """Set the trading state, or press the kill switch, from the dashboard; audited as dashboard:USER."""
    refusal = _control_refusal(request, "press the kill switch" if action == "kill" else f"{action} trading")
    if refusal:
        return refusal
    actor = f"dashboard:{request.user.get_username()}"
    try:
        state = TRADING_ACTIONS[action](actor=actor, reason=request.POST["reason"])
    except ValueError as exc:  # enabling while a loss-limit breaker is tripped
        return HttpResponse(str(exc), status=409, content_type="text/plain")
    return render(
        request,
        "governance/partials/control_result.html",
        {"done": "kill switch pressed: trading halted, open orders being cancelled" if action == "kill" else f"trading {state.state}",
         "actor": actor, "reason": state.reason},
    )


@require_POST
@never_cache
@staff_only
def pause_action(request, action):
    """Pause or resume one strategy or instrument from the dashboard; audited as dashboard:USER."""
    refusal = _control_refusal(request, f"{action} trading")
    if refusal:
        return refusal
    kind, _, name = request.POST.get("target", "").partition(":")
    model, field = {"strategy": (Strategy, "slug"), "instrument": (Instrument, "symbol")}.get(kind, (None, None))
    target = model.objects.filter(**{field: name}).first() if model else None
    if target is None:
        return HttpResponseBadRequest("no such strategy or instrument", content_type="text/plain")
    actor = f"dashboard:{request.user.get_username()}"
    row = controls.pause_set(target=target, paused=action == "pause", actor=actor, reason=request.POST["reason"])
    return render(
        request,
        "governance/partials/control_result.html",
        {"done": f"{kind} {row} {'paused' if row.paused else 'resumed'}", "actor": actor, "reason": request.POST["reason"].strip()},
    )


@require_POST
@never_cache
@staff_only
def breaker_action(request, action):
    """Trip or reset one breaker from the dashboard, with a reason; audited as dashboard:USER."""
    permission, change = BREAKER_ACTIONS[action]
    name, reason = request.POST.get("name", ""), request.POST.get("reason", "").strip()
    try:
        require(request.user, permission, f"{action} circuit breakers")
    except RoleRefused as exc:
        return HttpResponseForbidden(f"permission denied: {exc}", content_type="text/plain")
    if not reason or len(reason) > 500:
        return HttpResponseBadRequest("give a reason (at most 500 characters)", content_type="text/plain")
    tripped = CircuitBreaker.objects.filter(name=name).values_list("tripped", flat=True).first()
    if tripped is None:
        return HttpResponseBadRequest(f"no circuit breaker named {name!r}", content_type="text/plain")
    actor = f"dashboard:{request.user.get_username()}"
    try:
        breaker = change(name=name, actor=actor, reason=reason)
    except ValueError as exc:  # a loss-limit breaker: its reset takes four eyes (breaker reset / approve-reset)
        return HttpResponse(str(exc), status=409, content_type="text/plain")
    return render(
        request,
        "governance/partials/breaker_result.html",
        {"breaker": breaker, "done": "tripped" if action == "trip" else "reset", "changed": tripped != (action == "trip"), "actor": actor},
    )


@staff_required
def health_panel(request):
    return _partial(request, "health.html", health=selectors.health_status())


@staff_required
def nodes_panel(request):
    return _partial(request, "nodes.html", **selectors.nodes_status())


@staff_required
def banner_panel(request):
    return _partial(request, "banner.html", trading=trading_state())


@staff_required
def decisions_panel(request):
    return _partial(request, "decisions.html", chart=selectors.decisions_over_time())


@staff_required
def activity_panel(request):
    """Executions, one tab at a time: live by default, sandbox on its own tab."""
    tab = request.GET.get("tab")
    activity = selectors.executions_recent(tab=tab if tab in selectors.ACTIVITY_TABS else "live")
    return _partial(
        request,
        "activity.html",
        **activity,
        tab_counts=[(name, activity["counts"][name]) for name in selectors.ACTIVITY_TABS],
        url=reverse("dashboard-activity"),
        poll_header=POLL_HEADER,
    )


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
def allocation_panel(request):
    return _partial(request, "allocation.html", allocation=selectors.allocation_status(ruleset=ruleset_current()))


def _trace_filter(params) -> selectors.TraceFilter:
    """The trace's filters from the query string; a value that is not one of the choices, or
    not a date, is dropped (the form shows what is in force)."""

    def day(name):
        try:
            return date.fromisoformat(params.get(name, ""))
        except ValueError:
            return None

    choices = selectors.trace_choices()
    pick = lambda name, allowed: params.get(name, "") if params.get(name, "") in allowed else ""  # noqa: E731
    return selectors.TraceFilter(
        q=params.get("q", "").strip()[:64],
        strategy=pick("strategy", choices["strategies"]),
        symbol=pick("symbol", choices["symbols"]),
        status=pick("status", choices["statuses"]),
        outcome=pick("outcome", choices["outcomes"]),
        since=day("since"),
        until=day("until"),
    )


@staff_required
def proposals_panel(request):
    selected = request.GET.get("selected", "")
    try:
        selected = str(uuid.UUID(selected)) if selected else ""
    except ValueError:
        selected = ""
    try:
        page = int(request.GET.get("page") or 1)
    except ValueError:
        page = 1
    filters = _trace_filter(request.GET)
    trace = selectors.proposals_trace(selected=selected, filters=filters, page=page)
    return _partial(
        request,
        "proposals.html",
        rows=trace["rows"],
        trace=trace,
        filters=filters,
        selected=selected,
        venue=selectors.venue_status(),
    )
