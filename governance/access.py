"""Staff access hardening for the admin and the dashboard: idle sessions end, and with
CHRONOSX_REQUIRE_2FA risk officers (and superusers) sign in with a TOTP code.

Failed-login lockout is django-axes (settings: AXES_*); `client_ip` tells it who is asking.
Two-factor devices are set up from the shell only (`manage.py staff totp NAME`), so a stolen
password alone can never enrol one.
"""

import ipaddress
import time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.roles import user_role

# The session key holding when its user last did something (a unix time).
LAST_SEEN = "chronosx_last_seen"
# Sent by the dashboard's timed panel refreshes: they are not the user doing something.
POLL_HEADER = "X-Chronosx-Poll"
TWO_FACTOR_ROLE = "risk_officer"


def client_ip(request) -> str | None:
    """The client's address for django-axes. The app listens on 127.0.0.1 behind nginx, which
    appends the address it saw to X-Forwarded-For: only then is the header believed."""
    remote = request.META.get("REMOTE_ADDR")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    try:
        behind_proxy = remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        behind_proxy = False
    if behind_proxy and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    return remote


# --- idle sessions --------------------------------------------------------------------


class IdleSessionMiddleware(MiddlewareMixin):
    """Ends a session after CHRONOSX_SESSION_IDLE_SECONDS without a request of its user's own.
    The time is written at most every minute (each write extends the stored session's expiry,
    SESSION_COOKIE_AGE), and never for the dashboard's timed refreshes."""

    def process_request(self, request):
        if request.user.is_authenticated:
            now, idle = int(time.time()), settings.CHRONOSX_SESSION_IDLE_SECONDS
            seen = request.session.get(LAST_SEEN)
            if seen is not None and now - seen >= idle:
                logout(request)  # the view then sees an anonymous visitor: login page, nothing done
            elif seen is None or (now - seen >= min(60, idle // 4) and not request.headers.get(POLL_HEADER)):
                request.session[LAST_SEEN] = now


# --- two-factor -------------------------------------------------------------------------


def two_factor_required(user) -> bool:
    """Whether `user` must sign in with a TOTP code: with CHRONOSX_REQUIRE_2FA, every risk
    officer, and every superuser (who may do all a risk officer may)."""
    if not (settings.CHRONOSX_REQUIRE_2FA and user.is_authenticated):
        return False
    return user.is_superuser or user_role(user) == TWO_FACTOR_ROLE


def totp_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


class TwoFactorLoginForm(AdminAuthenticationForm):
    """The admin login form, plus the authenticator code of those who need one. A code that
    verifies marks the session as verified (django-otp's login hook, via `user.otp_device`)."""

    otp_token = forms.CharField(
        label="Two-factor code",
        required=False,
        max_length=10,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="The 6-digit code from your authenticator app (risk officers, when two-factor is on).",
    )

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        token = (self.cleaned_data.get("otp_token") or "").strip()
        required = two_factor_required(user)
        if not (required or token):
            return
        device = totp_device(user)
        if device is None:
            raise forms.ValidationError(
                f"Two-factor authentication is required for {user.get_username()}, who has no authenticator "
                f"set up: an administrator runs `manage.py staff totp {user.get_username()}`.",
                code="no_device",
            )
        if not token:
            raise forms.ValidationError("Enter the 6-digit code from your authenticator app.", code="otp_required")
        if not device.verify_token(token):  # throttled by the device after each failure
            raise forms.ValidationError(
                "That two-factor code is not valid (after several wrong codes, wait a little before the next).",
                code="otp_invalid",
            )
        user.otp_device = device


class TwoFactorMiddleware(MiddlewareMixin):
    """With CHRONOSX_REQUIRE_2FA, a session of someone who needs two-factor but has not given a
    code reaches nothing: it is ended, and the admin login (which asks for the code) is shown.
    Such a session exists when two-factor was turned on after it began."""

    def process_request(self, request):
        user = request.user
        if two_factor_required(user) and not user.is_verified() and not request.path.startswith(settings.STATIC_URL):
            logout(request)
            messages.warning(request, "Two-factor authentication is required for your role: sign in again with your code.")
            login = f"{reverse('admin:login')}?{urlencode({'next': request.get_full_path()})}"
            if getattr(request, "htmx", False):
                # A login form swapped into a dashboard panel would hide what happened.
                return HttpResponseClientRedirect(f"{reverse('admin:login')}?{urlencode({'next': reverse('dashboard')})}")
            return redirect(login)
        return None


def security_context(request) -> dict:
    """Template context: the warning shown on every admin and dashboard page while two-factor is off."""
    if settings.CHRONOSX_REQUIRE_2FA:
        return {}
    why = "embedded default" if settings.CHRONOSX_EMBEDDED_DEFAULT else "CHRONOSX_REQUIRE_2FA=0"
    return {"two_factor_off_warning": f"Two-factor authentication is off ({why})"}
