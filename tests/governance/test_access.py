"""Staff access hardening: failed-login lockout, idle sessions, two-factor for risk officers,
the warning while two-factor is off; and `manage.py staff`."""

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.access import LAST_SEEN
from governance.models import CircuitBreaker
from governance.roles import ROLES
from governance.services.staff import staff_totp_reset
from ledger.models import AuditEvent
from tests.builders import staff_member

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def two_factor_on(settings):
    settings.CHRONOSX_REQUIRE_2FA = True


def log_in(client, username, password=PASSWORD, **extra):
    data = {"username": username, "password": password, "next": "/admin/"}
    data.update(extra.pop("data", {}))
    return client.post("/admin/login/", data, **extra)


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def code(device) -> str:
    return str(TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()).zfill(device.digits)


# --- failed-login lockout (django-axes) ------------------------------------------------------


def test_five_failed_logins_lock_that_username_out_from_that_address(seeded, fast_hashing):
    staff_member("operator", "ops", password=PASSWORD)
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(4):
        assert log_in(client, "ops", "wrong").status_code == 200  # the form again, with its error
    assert log_in(client, "ops", "wrong").status_code == 429  # the fifth failure locks
    locked = log_in(client, "ops")  # even the right password, now
    assert locked.status_code == 429 and b"too many login attempts" in locked.content
    assert not logged_in(client)
    # The same username from another address, and another username from this one, still sign in.
    assert log_in(Client(REMOTE_ADDR="198.51.100.2"), "ops").status_code == 302
    staff_member("viewer", "val", password=PASSWORD)
    assert log_in(Client(REMOTE_ADDR="203.0.113.7"), "val").status_code == 302


def test_the_lockout_ends_after_the_cool_off(seeded, fast_hashing, settings):
    staff_member("operator", "ops", password=PASSWORD)
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(5):
        log_in(client, "ops", "wrong")
    assert log_in(client, "ops").status_code == 429
    time.sleep(1.2)
    assert log_in(client, "ops").status_code == 302 and logged_in(client)


def test_a_successful_login_clears_the_failures(seeded, fast_hashing):
    staff_member("operator", "ops", password=PASSWORD)
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(4):
        log_in(client, "ops", "wrong")
    assert log_in(client, "ops").status_code == 302
    client.post("/admin/logout/")
    for _ in range(4):
        log_in(client, "ops", "wrong")
    assert log_in(client, "ops").status_code == 302


def test_behind_nginx_the_lockout_counts_the_address_nginx_saw(seeded, fast_hashing):
    """nginx (on 127.0.0.1) appends the client's address to X-Forwarded-For; a client that
    reaches the app directly cannot pick its address with that header."""
    staff_member("operator", "ops", password=PASSWORD)
    proxied = Client(REMOTE_ADDR="127.0.0.1")
    for _ in range(5):
        log_in(proxied, "ops", "wrong", HTTP_X_FORWARDED_FOR="forged, 203.0.113.7")
    assert log_in(proxied, "ops", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert log_in(proxied, "ops", HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 302

    direct = Client(REMOTE_ADDR="192.0.2.50")
    for n in range(5):
        log_in(direct, "ops", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert log_in(direct, "ops", HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429


# --- idle sessions ---------------------------------------------------------------------------


def set_last_seen(client, seconds_ago):
    session = client.session
    session[LAST_SEEN] = int(time.time()) - seconds_ago
    session.save()


def test_the_default_idle_timeout_is_8_hours_and_the_session_cookie_expires_with_it(settings):
    assert settings.CHRONOSX_SESSION_IDLE_SECONDS == 8 * 3600 == settings.SESSION_COOKIE_AGE


def test_an_idle_session_ends_and_the_next_request_goes_to_the_login_page(login_as, settings):
    client = login_as("operator")
    assert client.get("/admin/").status_code == 200
    set_last_seen(client, settings.CHRONOSX_SESSION_IDLE_SECONDS + 1)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/").status_code == 302  # the dashboard too: the session is gone
    assert LAST_SEEN not in client.session


def test_an_idle_session_changes_nothing_it_posts(login_as, settings):
    client = login_as("operator")
    client.get("/admin/")
    set_last_seen(client, settings.CHRONOSX_SESSION_IDLE_SECONDS + 1)
    count = AuditEvent.objects.count()
    response = client.post("/dashboard/breakers/trip/", {"name": "venue_errors", "reason": "late"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not CircuitBreaker.objects.get(name="venue_errors").tripped and AuditEvent.objects.count() == count


def test_activity_keeps_a_session_alive_and_the_timeout_is_configurable(login_as, settings):
    settings.CHRONOSX_SESSION_IDLE_SECONDS = 600
    client = login_as("viewer")
    set_last_seen(client, 500)
    assert client.get("/admin/").status_code == 200
    assert abs(client.session[LAST_SEEN] - time.time()) < 5  # the clock starts again
    set_last_seen(client, 601)
    assert client.get("/admin/").status_code == 302


def test_the_dashboards_timed_refreshes_do_not_keep_a_session_alive(login_as, settings):
    client = login_as("viewer")
    set_last_seen(client, 300)
    before = client.session[LAST_SEEN]
    response = client.get("/dashboard/partials/health/", HTTP_HX_REQUEST="true", HTTP_X_CHRONOSX_POLL="1")
    assert response.status_code == 200 and client.session[LAST_SEEN] == before
    client.get("/dashboard/partials/proposals/", {"selected": ""}, HTTP_HX_REQUEST="true")  # a click
    assert client.session[LAST_SEEN] > before
    page = client.get("/").content.decode()
    timed = re.findall(r'<div class="body" id="body-[^"]+".*?>', page, re.S)  # every refreshed panel
    assert len(timed) >= 6 and all("""hx-headers='{"X-Chronosx-Poll": "1"}'""" in panel for panel in timed)


# --- two-factor ------------------------------------------------------------------------------


def test_with_two_factor_on_a_risk_officer_without_a_code_reaches_no_page(login_as, two_factor_on):
    client = login_as("risk_officer")  # signed in without a code (before two-factor was turned on)
    response = client.get("/admin/governance/circuitbreaker/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=%2Fadmin%2Fgovernance%2Fcircuitbreaker%2F"
    assert not logged_in(client)  # the session was ended, not just redirected
    page = client.get("/admin/login/").content.decode()
    assert "Two-factor authentication is required for your role" in page and 'name="otp_token"' in page


def test_with_two_factor_on_an_unverified_dashboard_panel_sends_the_whole_page_to_login(login_as, two_factor_on):
    client = login_as("risk_officer")
    response = client.get("/dashboard/partials/controls/", HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == "/admin/login/?next=%2F"
    assert client.post("/dashboard/breakers/trip/", {"name": "venue_errors", "reason": "x"}).status_code == 302


@pytest.mark.parametrize("role", ["viewer", "operator", "compliance"])
def test_with_two_factor_on_other_roles_sign_in_with_their_password_alone(seeded, fast_hashing, two_factor_on, role):
    staff_member(role, "pat", password=PASSWORD)
    client = Client()
    assert log_in(client, "pat").status_code == 302 and logged_in(client)


def test_with_two_factor_on_a_risk_officer_without_a_device_is_told_how_to_get_one(seeded, fast_hashing, two_factor_on):
    staff_member("risk_officer", "rita", password=PASSWORD)
    client = Client()
    response = log_in(client, "rita")
    assert response.status_code == 200
    assert "no authenticator set up" in response.content.decode() and "manage.py staff totp rita" in response.content.decode()
    assert not logged_in(client)


@pytest.mark.parametrize("role", ["risk_officer", "superuser"])
def test_with_two_factor_on_a_risk_officer_signs_in_with_password_and_code(seeded, fast_hashing, two_factor_on, role):
    if role == "superuser":
        get_user_model().objects.create_superuser("rita", "rita@example.com", PASSWORD)
    else:
        staff_member(role, "rita", password=PASSWORD)
    device = staff_totp_reset(name="rita", actor="test")
    client = Client()

    missing = log_in(client, "rita")
    assert missing.status_code == 200 and "Enter the 6-digit code" in missing.content.decode() and not logged_in(client)
    wrong = log_in(client, "rita", data={"otp_token": str((int(code(device)) + 1) % 10**6).zfill(6)})
    assert wrong.status_code == 200 and "not valid" in wrong.content.decode() and not logged_in(client)

    device.refresh_from_db()
    device.throttle_reset()  # a wrong code makes the next try wait a second
    assert log_in(client, "rita", data={"otp_token": code(device)}).status_code == 302
    assert logged_in(client)
    assert client.get("/").status_code == 200


def test_with_two_factor_off_a_risk_officer_signs_in_with_a_password_alone(seeded, fast_hashing):
    staff_member("risk_officer", "rita", password=PASSWORD)
    client = Client()
    assert log_in(client, "rita").status_code == 302 and logged_in(client)


def test_two_factor_is_on_by_default_exactly_when_a_database_url_is_set():
    def setting(**env):
        environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CHRONOSX_REQUIRE_2FA")}
        environment.update(env, DJANGO_SETTINGS_MODULE="chronosx.settings", DJANGO_SECRET_KEY="k")
        result = subprocess.run(
            [sys.executable, "-c", "from django.conf import settings; print(settings.CHRONOSX_REQUIRE_2FA)"],
            cwd=ROOT, env=environment, capture_output=True, text=True, check=True,
        )
        return result.stdout.strip()

    production = "postgres://nobody:x@127.0.0.1:1/none"
    assert setting() == "False"
    assert setting(DATABASE_URL=production) == "True"
    assert setting(DATABASE_URL=production, CHRONOSX_REQUIRE_2FA="0") == "False"
    assert setting(CHRONOSX_REQUIRE_2FA="1") == "True"


# --- the warning while two-factor is off -------------------------------------------------------

WARNING = "Two-factor authentication is off (embedded default)"


def test_admin_and_dashboard_warn_while_two_factor_is_off_in_the_embedded_default(login_as, settings, client):
    settings.CHRONOSX_EMBEDDED_DEFAULT = True
    assert WARNING in client.get("/admin/login/").content.decode()
    login_as("viewer")
    assert WARNING in client.get("/admin/").content.decode()
    assert WARNING in client.get("/admin/governance/circuitbreaker/").content.decode()
    assert WARNING in client.get("/").content.decode()


def test_no_warning_while_two_factor_is_on(login_as, settings, client):
    settings.CHRONOSX_EMBEDDED_DEFAULT = True
    settings.CHRONOSX_REQUIRE_2FA = True
    login_as("viewer")
    for url in ("/admin/login/", "/admin/", "/"):
        assert "Two-factor authentication is off" not in client.get(url).content.decode()


def test_a_production_stack_with_two_factor_turned_off_says_how(login_as, settings, client):
    settings.CHRONOSX_EMBEDDED_DEFAULT = False
    login_as("viewer")
    assert "Two-factor authentication is off (CHRONOSX_REQUIRE_2FA=0)" in client.get("/").content.decode()


# --- manage.py staff -------------------------------------------------------------------------


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def roles_of(user):
    return sorted(user.groups.filter(name__in=ROLES).values_list("name", flat=True))


def test_staff_add_creates_a_staff_user_with_one_role_and_no_usable_password(db):
    assert run("staff", "add", "alice", "--role", "operator")[0] == "alice\n"
    alice = get_user_model().objects.get(username="alice")
    assert alice.is_staff and alice.is_active and not alice.is_superuser
    assert roles_of(alice) == ["operator"] and not alice.has_usable_password()
    event = AuditEvent.objects.get(kind="staff.added")
    assert event.actor.startswith("operator:") and '"role":"operator"' in event.payload


def test_staff_add_moves_an_existing_user_to_the_role_and_keeps_their_password(db, fast_hashing):
    staff_member("viewer", "alice", password=PASSWORD)
    alice = get_user_model().objects.get(username="alice")
    alice.groups.add(Group.objects.create(name="newsletter"))  # not a role: left alone
    assert run("staff", "add", "alice", "--role", "risk_officer")[0] == "alice\n"
    alice = get_user_model().objects.get(username="alice")
    assert roles_of(alice) == ["risk_officer"] and alice.groups.filter(name="newsletter").exists()
    assert alice.check_password(PASSWORD)
    assert alice.has_perm("governance.approve_ruleset") and not alice.has_perm("ledger.export_reports")
    assert '"previous_role":"viewer"' in AuditEvent.objects.get(kind="staff.role_set").payload


def test_staff_add_takes_the_password_from_the_file_without_its_trailing_newline(db, fast_hashing, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    assert run("staff", "add", "bob", "--role", "compliance", "--password-file", str(secret))[0] == "bob\n"
    bob = get_user_model().objects.get(username="bob")
    assert bob.check_password(PASSWORD) and not bob.check_password(PASSWORD + "\n")


def test_staff_add_makes_a_superuser_just_their_role(db):
    get_user_model().objects.create_superuser("root", "root@example.com", None)
    run("staff", "add", "root", "--role", "viewer")
    root = get_user_model().objects.get(username="root")
    assert not root.is_superuser and not root.has_perm("governance.trip_breaker")


def test_staff_add_refuses_an_empty_or_missing_password_file(db, tmp_path):
    (tmp_path / "empty").write_text("\n")
    for path in (tmp_path / "empty", tmp_path / "absent"):
        with pytest.raises(CommandError):
            run("staff", "add", "bob", "--role", "viewer", "--password-file", str(path))
    assert not get_user_model().objects.filter(username="bob").exists()


def test_staff_add_with_an_unknown_role_exits_1_naming_the_roles(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment["CHRONOSX_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "staff", "add", "alice", "--role", "wizard"],
        cwd=ROOT, env=environment, capture_output=True, text=True,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "unknown role 'wizard': one of viewer, operator, risk_officer, compliance" in result.stderr


def test_staff_totp_prints_an_otpauth_uri_once_and_replaces_the_old_device(db):
    staff_member("risk_officer", "rita")
    first = run("staff", "totp", "rita")[0].strip()
    uri = urlparse(first)
    assert uri.scheme == "otpauth" and uri.netloc == "totp" and uri.path == "/ChronosX%3Arita"
    assert parse_qs(uri.query)["issuer"] == ["ChronosX"] and len(parse_qs(uri.query)["secret"][0]) == 32
    second = run("staff", "totp", "rita")[0].strip()
    assert second != first
    assert TOTPDevice.objects.filter(user__username="rita").count() == 1
    assert AuditEvent.objects.filter(kind="staff.totp_set").count() == 2
    with pytest.raises(CommandError):
        run("staff", "totp", "nobody")


def test_staff_add_reminds_on_stderr_that_a_risk_officer_needs_a_device(db, two_factor_on):
    out, err = run("staff", "add", "rita", "--role", "risk_officer")
    assert out == "rita\n" and "manage.py staff totp rita" in err


# --- the roles themselves --------------------------------------------------------------------


def test_each_role_holds_exactly_its_permissions_beyond_reading(db):
    actions = {
        role: sorted(
            f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=role).permissions.select_related("content_type")
            if not p.codename.startswith("view_")
        )
        for role in ROLES
    }
    operator = ["governance.control_trading", "governance.request_force", "governance.reset_breaker", "governance.trip_breaker"]
    assert actions["viewer"] == []
    assert actions["operator"] == operator
    assert actions["risk_officer"] == sorted([*operator, "governance.approve_force", "governance.approve_ruleset", "governance.edit_ruleset"])
    assert actions["compliance"] == ["ledger.export_reports", "ledger.verify_audit"]
