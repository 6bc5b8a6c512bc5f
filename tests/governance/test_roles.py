"""Each role × each action it could take in the admin, the dashboard and the `breaker` command:
allowed, or refused (403, or exit 1 with `permission denied:`) with nothing changed."""

import getpass
import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.db import connections
from django.test import Client
from django.utils import timezone

from governance.models import Agent, CircuitBreaker, Instrument, NodeKey, Proposal, Strategy, VenueHealth, WorkerHeartbeat
from governance.roles import PermissionDenied
from governance.services.controls import breaker_trip
from ledger.models import AuditEvent
from tests.builders import post_proposal, staff_member

ROLES = ["viewer", "operator", "risk_officer", "compliance", "superuser"]
MAY_BREAKERS = {"operator", "risk_officer", "superuser"}
MAY_EDIT_RISK_CONFIGURATION = {"risk_officer", "superuser"}
MAY_EXPORT = {"compliance", "superuser"}


def events(kind=None):
    rows = AuditEvent.objects.all()
    return rows.filter(kind=kind).count() if kind else rows.count()


def breakers_state():
    return list(CircuitBreaker.objects.order_by("name").values_list("name", "tripped", "reason", "changed_by"))


@pytest.fixture
def manual_kill(seeded):
    return breaker_trip(name="manual_kill", actor="operator:ops", reason="desk halted everything")


def offered_actions(client, url):
    page = client.get(url).content.decode()
    return {value for value in ("trip", "reset", "export_csv", "delete_selected") if f'<option value="{value}"' in page}


# --- the admin: circuit breakers ----------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_breaker_actions_are_offered_only_to_roles_that_may_take_them(login_as, role):
    client = login_as(role)
    expected = {"trip", "reset"} if role in MAY_BREAKERS else set()
    assert offered_actions(client, "/admin/governance/circuitbreaker/") == expected


@pytest.mark.parametrize("role", ROLES)
def test_resetting_a_breaker_in_admin_takes_a_reason_and_records_the_user_or_is_refused(login_as, manual_kill, role):
    client = login_as(role)
    before, count = breakers_state(), events()
    ask = client.post("/admin/governance/circuitbreaker/", {"action": "reset", "index": "0", "_selected_action": [manual_kill.pk]})
    if role not in MAY_BREAKERS:
        assert ask.status_code == 403
        assert breakers_state() == before and events() == count
        return
    # First the confirmation page asking why; nothing changes yet.
    assert ask.status_code == 200 and b'name="reason"' in ask.content and b"manual_kill" in ask.content
    assert breakers_state() == before and events() == count
    done = client.post(
        "/admin/governance/circuitbreaker/",
        {"action": "reset", "_selected_action": [manual_kill.pk], "confirm": "yes", "reason": "desk clear again"},
    )
    assert done.status_code == 302
    breaker = CircuitBreaker.objects.get(name="manual_kill")
    assert not breaker.tripped and breaker.reason == "desk clear again" and breaker.changed_by == f"admin:{client.user.username}"
    assert events() == count + 1
    event = AuditEvent.objects.filter(kind="breaker.reset").latest("id")
    assert event.actor == f"admin:{client.user.username}"
    assert json.loads(event.payload) == {"breaker": "manual_kill", "reason": "desk clear again"}


@pytest.mark.parametrize("role", ROLES)
def test_tripping_breakers_in_admin_takes_a_reason_and_records_the_user_or_is_refused(login_as, role):
    client = login_as(role)
    selected = list(CircuitBreaker.objects.filter(name__in=["venue_errors", "venue_latency"]).values_list("pk", flat=True))
    before, count = breakers_state(), events()
    response = client.post(
        "/admin/governance/circuitbreaker/",
        {"action": "trip", "_selected_action": selected, "confirm": "yes", "reason": "venue incident 7"},
    )
    if role not in MAY_BREAKERS:
        assert response.status_code == 403
        assert breakers_state() == before and events() == count
        return
    assert response.status_code == 302
    for name in ("venue_errors", "venue_latency"):
        breaker = CircuitBreaker.objects.get(name=name)
        assert breaker.tripped and breaker.reason == "venue incident 7" and breaker.changed_by == f"admin:{client.user.username}"
    assert events("breaker.tripped") == 2 and events() == count + 2
    assert not CircuitBreaker.objects.get(name="reconciliation_mismatch").tripped


def test_a_breaker_action_without_a_reason_asks_again_and_changes_nothing(login_as, manual_kill):
    client = login_as("operator")
    before, count = breakers_state(), events()
    response = client.post(
        "/admin/governance/circuitbreaker/",
        {"action": "reset", "_selected_action": [manual_kill.pk], "confirm": "yes", "reason": "   "},
    )
    assert response.status_code == 200 and b"This field is required" in response.content
    assert breakers_state() == before and events() == count


def test_a_breaker_already_in_that_state_is_left_alone_and_not_audited(login_as, manual_kill):
    client = login_as("operator")
    count = events()
    client.post(
        "/admin/governance/circuitbreaker/",
        {"action": "trip", "_selected_action": [manual_kill.pk], "confirm": "yes", "reason": "again"},
    )
    breaker = CircuitBreaker.objects.get(name="manual_kill")
    assert breaker.reason == "desk halted everything" and breaker.changed_by == "operator:ops"
    assert events() == count


def test_the_breaker_list_shows_who_tripped_each_and_marks_automatic_trips(login_as, seeded):
    breaker_trip(name="venue_errors", actor="exchange:breakers", reason="5 venue errors in a row")
    breaker_trip(name="manual_kill", actor="admin:alice", reason="desk call")
    page = login_as("viewer").get("/admin/governance/circuitbreaker/").content.decode()
    assert "exchange:breakers (automatic)" in page
    assert "admin:alice" in page and "admin:alice (automatic)" not in page


def test_nothing_about_a_breaker_changes_on_get(login_as, manual_kill):
    client = login_as("operator")
    before, count = breakers_state(), events()
    for url in (
        "/admin/governance/circuitbreaker/?action=reset&_selected_action=%d&confirm=yes&reason=x" % manual_kill.pk,
        f"/admin/governance/circuitbreaker/{manual_kill.pk}/change/",
        "/dashboard/breakers/reset/?name=manual_kill&reason=x",
    ):
        assert client.get(url).status_code in (200, 302, 405)  # 302: the changelist drops unknown filters
    assert breakers_state() == before and events() == count


# --- regression: the view-only staff user ------------------------------------------


def test_a_view_only_staff_user_cannot_reset_manual_kill_by_posting_the_action(client, django_user_model, manual_kill):
    """The bug: a staff user with nothing but view permissions reset `manual_kill` from the
    changelist; `reset` checked no permission. Now: 403, still tripped, nothing audited."""
    user = django_user_model.objects.create_user("looker", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)
    count = events()
    for data in (
        {"action": "reset", "index": "0", "_selected_action": [manual_kill.pk]},
        {"action": "reset", "_selected_action": [manual_kill.pk], "confirm": "yes", "reason": "just looking"},
    ):
        assert client.post("/admin/governance/circuitbreaker/", data).status_code == 403
    breaker = CircuitBreaker.objects.get(name="manual_kill")
    assert breaker.tripped and breaker.changed_by == "operator:ops"
    assert events() == count


def test_a_viewer_cannot_reset_a_breaker_from_the_dashboard_or_the_command_either(client, manual_kill):
    viewer = staff_member("viewer", "looker")
    client.force_login(viewer)
    count = events()
    response = client.post("/dashboard/breakers/reset/", {"name": "manual_kill", "reason": "just looking"})
    assert response.status_code == 403
    with pytest.raises(PermissionDenied):
        call_command("breaker", "reset", "manual_kill", "--reason", "x", "--user", "looker", stdout=io.StringIO())
    assert CircuitBreaker.objects.get(name="manual_kill").tripped and events() == count


# --- the admin: instruments, strategies, agents -------------------------------------------


def instrument_form(instrument, **changes):
    data = {
        "symbol": instrument.symbol, "base_asset": instrument.base_asset, "quote_asset": instrument.quote_asset,
        "min_quantity": str(instrument.min_quantity), "quantity_step": str(instrument.quantity_step),
        "price_tick": str(instrument.price_tick), "enabled": "on" if instrument.enabled else "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.parametrize("role", ROLES)
def test_only_risk_officers_change_instruments(login_as, role):
    client = login_as(role)
    eth = Instrument.objects.get(symbol="ETHUSDT")
    count = events()
    response = client.post(f"/admin/governance/instrument/{eth.pk}/change/", instrument_form(eth, enabled=""))
    if role in MAY_EDIT_RISK_CONFIGURATION:
        assert response.status_code == 302
        assert Instrument.objects.get(pk=eth.pk).enabled is False
        assert AuditEvent.objects.filter(kind="instrument.changed").latest("id").actor == f"admin:{client.user.username}"
    else:
        assert response.status_code == 403
        assert Instrument.objects.get(pk=eth.pk).enabled is True and events() == count


@pytest.mark.parametrize("role", ROLES)
def test_only_risk_officers_add_instruments_and_strategies(login_as, role):
    client = login_as(role)
    count = events()
    instrument = client.post(
        "/admin/governance/instrument/add/",
        {"symbol": "SOLUSDT", "base_asset": "SOL", "quote_asset": "USDT", "min_quantity": "0.01",
         "quantity_step": "0.01", "price_tick": "0.01", "enabled": "on"},
    )
    strategy = client.post("/admin/governance/strategy/add/", {"slug": "swing", "name": "Swing"})
    if role in MAY_EDIT_RISK_CONFIGURATION:
        assert instrument.status_code == strategy.status_code == 302
        assert Instrument.objects.filter(symbol="SOLUSDT").exists() and Strategy.objects.filter(slug="swing").exists()
        assert events() == count + 2
    else:
        assert instrument.status_code == strategy.status_code == 403
        assert not Instrument.objects.filter(symbol="SOLUSDT").exists() and not Strategy.objects.filter(slug="swing").exists()
        assert events() == count


@pytest.mark.parametrize("role", ROLES)
def test_only_risk_officers_change_an_agents_strategies_and_nobody_adds_one_in_admin(login_as, agent_token, role):
    client = login_as(role)
    agent, _ = agent_token
    swing = Strategy.objects.create(slug="swing", name="Swing")
    count = events()
    response = client.post(
        f"/admin/governance/agent/{agent.pk}/change/",
        {"name": agent.name, "strategies": [swing.pk], "is_active": "on"},
    )
    bound = set(Agent.objects.get(pk=agent.pk).strategies.values_list("slug", flat=True))
    if role in MAY_EDIT_RISK_CONFIGURATION:
        assert response.status_code == 302 and bound == {"swing"}
    else:
        assert response.status_code == 403 and bound == {"demo"} and events() == count
    assert client.post("/admin/governance/agent/add/", {"name": "sneaky"}).status_code == 403  # tokens: create_agent only
    assert not Agent.objects.filter(name="sneaky").exists()


@pytest.mark.parametrize("role", ROLES)
def test_nobody_deletes_instruments_strategies_or_agents(login_as, agent_token, role):
    client = login_as(role)
    eth, demo = Instrument.objects.get(symbol="ETHUSDT"), Strategy.objects.get(slug="demo")
    agent, _ = agent_token
    for url, model, pk in (
        ("instrument", Instrument, eth.pk), ("strategy", Strategy, demo.pk), ("agent", Agent, agent.pk)
    ):
        assert client.post(f"/admin/governance/{url}/{pk}/delete/", {"post": "yes"}).status_code == 403
        assert client.post(f"/admin/governance/{url}/", {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}).status_code == 403
        assert model.objects.filter(pk=pk).exists()


# --- the admin: read-only records ----------------------------------------------------------

READ_ONLY = [
    "governance/proposal", "governance/nodekey", "governance/workerheartbeat", "governance/venuehealth",
    "exchange/order", "exchange/sandboxorder",
    "ledger/auditevent", "ledger/fill", "ledger/position", "ledger/lot", "ledger/realizedpnl",
]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_every_record_and_nobody_adds_changes_or_deletes_one(login_as, api, role):
    client = login_as(role)
    post_proposal(api)
    WorkerHeartbeat.objects.update_or_create(kind="risk", defaults={"last_heartbeat": timezone.now()})
    count = events()
    for model in READ_ONLY:
        assert client.get(f"/admin/{model}/").status_code == 200, model
        assert client.get(f"/admin/{model}/add/").status_code == 403, model
    for model, obj in (
        ("governance/proposal", Proposal.objects.first()),
        ("governance/nodekey", NodeKey.objects.first()),
        ("governance/venuehealth", VenueHealth.objects.first()),
        ("ledger/auditevent", AuditEvent.objects.first()),
    ):
        change = client.post(f"/admin/{model}/{obj.pk}/change/", {"kind": "forged", "active": ""})
        assert change.status_code == 403, model
        assert client.post(f"/admin/{model}/{obj.pk}/delete/", {"post": "yes"}).status_code == 403, model
    assert NodeKey.objects.filter(active=True).count() == 3
    assert not AuditEvent.objects.filter(kind="forged").exists() and events() == count


@pytest.mark.parametrize("role", ROLES)
def test_only_compliance_exports_proposals_and_a_refused_export_writes_nothing(login_as, api, role):
    client = login_as(role)
    proposal_id = post_proposal(api).json()["id"]
    assert ("export_csv" in offered_actions(client, "/admin/governance/proposal/")) is (role in MAY_EXPORT)
    count = events()
    response = client.post("/admin/governance/proposal/", {"action": "export_csv", "index": "0", "_selected_action": [proposal_id]})
    if role in MAY_EXPORT:
        assert response.status_code == 200 and response["Content-Type"] == "text/csv"
        assert events("report.exported") == 1
    else:
        assert response.status_code == 403 and events() == count


def test_an_action_that_does_not_exist_answers_403(login_as, seeded):
    client = login_as("superuser")
    assert client.post("/admin/governance/circuitbreaker/", {"action": "explode", "_selected_action": [1]}).status_code == 403


# --- the dashboard ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_dashboard_offers_breaker_controls_only_to_roles_that_may_use_them(login_as, role):
    page = login_as(role).get("/").content.decode()
    assert ('id="breaker-form"' in page) is (role in MAY_BREAKERS)
    if role in MAY_BREAKERS:
        assert 'hx-post="/dashboard/breakers/trip/"' in page and 'hx-post="/dashboard/breakers/reset/"' in page
        assert 'name="csrfmiddlewaretoken"' in page and '<option>venue_errors</option>' in page


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["trip", "reset"])
def test_dashboard_breaker_controls_are_audited_as_the_user_or_refused(login_as, role, action):
    client = login_as(role)
    if action == "reset":
        breaker_trip(name="venue_errors", actor="exchange:breakers", reason="5 errors")
    before, count = breakers_state(), events()
    response = client.post(
        f"/dashboard/breakers/{action}/", {"name": "venue_errors", "reason": "from the desk"}, HTTP_HX_REQUEST="true"
    )
    if role not in MAY_BREAKERS:
        assert response.status_code == 403 and response.content.decode().startswith("permission denied: ")
        assert breakers_state() == before and events() == count
        return
    assert response.status_code == 200
    actor = f"dashboard:{client.user.username}"
    assert f"venue_errors {'tripped' if action == 'trip' else 'reset'}" in response.content.decode()
    breaker = CircuitBreaker.objects.get(name="venue_errors")
    assert breaker.tripped is (action == "trip") and breaker.changed_by == actor and breaker.reason == "from the desk"
    event = AuditEvent.objects.latest("id")
    assert events() == count + 1 and event.kind == f"breaker.{'tripped' if action == 'trip' else 'reset'}"
    assert event.actor == actor and json.loads(event.payload)["reason"] == "from the desk"


def test_dashboard_breaker_controls_need_a_reason_a_known_breaker_csrf_and_a_login(client, login_as, seeded):
    operator = login_as("operator")
    before, count = breakers_state(), events()
    assert operator.post("/dashboard/breakers/trip/", {"name": "venue_errors", "reason": " "}).status_code == 400
    assert operator.post("/dashboard/breakers/trip/", {"name": "no_such", "reason": "x"}).status_code == 400
    assert operator.post("/dashboard/breakers/explode/", {"name": "venue_errors", "reason": "x"}).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator.user)
    assert strict.post("/dashboard/breakers/trip/", {"name": "venue_errors", "reason": "x"}).status_code == 403
    anonymous = Client()
    response = anonymous.post("/dashboard/breakers/trip/", {"name": "venue_errors", "reason": "x"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert breakers_state() == before and events() == count


# --- the breaker command ------------------------------------------------------------------


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_cli(argv, capsys, monkeypatch):
    """As `manage.py …` runs it (run_from_argv: Django's error printing and exit status), in
    this process so that it sees the test's database. Returns (exit status, stdout, stderr)."""
    monkeypatch.setattr(connections, "close_all", lambda: None)  # run_from_argv's, at its end
    command = load_command_class(get_commands()[argv[0]], argv[0])
    try:
        command.run_from_argv(["manage.py", *argv])
        status = 0
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("role", ROLES[:-1])
@pytest.mark.parametrize("action", ["trip", "reset"])
def test_breaker_command_runs_with_the_named_staff_users_role(seeded, role, action, capsys, monkeypatch):
    staff_member(role, "pat")
    if action == "reset":
        breaker_trip(name="venue_errors", actor="exchange:breakers", reason="5 errors")
    before, count = breakers_state(), events()
    status, out, err = run_cli(["breaker", action, "venue_errors", "--reason", "desk call", "--user", "pat"], capsys, monkeypatch)
    if role not in MAY_BREAKERS:
        assert status == 1 and out == ""
        assert err.splitlines() == [f"permission denied: pat ({role}) may not {action} circuit breaker venue_errors"]
        assert breakers_state() == before and events() == count
        return
    assert status == 0 and err == ""
    assert out == f"venue_errors: {'tripped' if action == 'trip' else 'reset'} by operator:pat: desk call\n"
    assert CircuitBreaker.objects.get(name="venue_errors").changed_by == "operator:pat"
    assert AuditEvent.objects.latest("id").actor == "operator:pat" and events() == count + 1


def test_breaker_command_without_a_staff_user_runs_with_full_rights_and_records_the_name(seeded):
    assert run("breaker", "trip", "manual_kill", "--reason", "desk call", "--user", "night-shift") == (
        "manual_kill: tripped by operator:night-shift: desk call\n"
    )
    shell = f"operator:{getpass.getuser()}"
    assert run("breaker", "reset", "manual_kill", "--reason", "all clear") == f"manual_kill: reset by {shell}: all clear\n"
    assert CircuitBreaker.objects.get(name="manual_kill").changed_by == shell
    assert list(AuditEvent.objects.filter(kind__startswith="breaker.").values_list("actor", flat=True).order_by("id")) == [
        "operator:night-shift", shell,
    ]


def test_breaker_command_refuses_an_empty_reason_and_says_when_nothing_changed(seeded):
    count = events()
    with pytest.raises(CommandError):
        run("breaker", "trip", "venue_errors", "--reason", "  ")
    assert run("breaker", "reset", "venue_errors", "--reason", "nothing to do") == "venue_errors: already reset (by -: -)\n"
    assert events() == count


def test_breaker_list_shows_who_changed_each_breaker(seeded):
    breaker_trip(name="venue_errors", actor="exchange:breakers", reason="5 errors")
    lines = dict(line.split("\t", 1) for line in run("breaker", "list").splitlines())
    assert lines["venue_errors"].startswith("TRIPPED\t") and lines["venue_errors"].endswith("\t5 errors\texchange:breakers")
    assert lines["venue_latency"] == "ok\t-\t\t-"
