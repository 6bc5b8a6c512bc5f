"""One error envelope out, for every failure an API request can meet (CONTRACT.md §1):
DRF's exception handler, the 404/500 views, and a 503 for a database outage anywhere."""

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from chronosx.api import CODES, ServiceUnavailable, error_body

log = logging.getLogger(__name__)

# How long a client should wait before retrying while the database is away.
RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def _flatten(detail):
    """DRF error detail → {"field": ["message", …]}; nested paths joined with dots."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):
                out.setdefault(prefix or "non_field_errors", []).extend(str(v) for v in value)
            else:
                for i, sub in enumerate(value):
                    walk(f"{prefix}.{i}", sub)
        else:
            out.setdefault(prefix or "non_field_errors", []).append(str(value))

    walk("", detail)
    return out


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DATABASE_UNAVAILABLE):
        # The database went away (or a transaction was chosen as a deadlock victim): the
        # transaction rolled back, nothing is stored, and the same request may be retried.
        log.warning("database unavailable: %s", exc)
        exc = ServiceUnavailable()
        exc.wait = RETRY_AFTER_SECONDS
    if not isinstance(exc, exceptions.APIException):
        return None

    code = next((c for cls, c in CODES.items() if isinstance(exc, cls)), None) or exc.default_code
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        names = ", ".join(sorted(fields))
        body = error_body("invalid", f"invalid request: {names}", fields)
    elif isinstance(exc, exceptions.Throttled):
        body = error_body("throttled", f"request rate exceeded; retry in {exc.wait:.0f} s" if exc.wait else "request rate exceeded")
    else:
        body = error_body(code, str(exc.detail))

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


def json_or_html_404(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "no such resource"), status=404)
    return defaults.page_not_found(request, exception)


def json_or_html_500(request):
    """Django's last resort. A database outage is a 503 with Retry-After, whatever page met it
    (admin, dashboard, a middleware): the request changed nothing and may be retried."""
    failure = sys.exc_info()[1]
    if isinstance(failure, DATABASE_UNAVAILABLE):
        log.warning("database unavailable: %s", failure)
        response = JsonResponse(error_body("unavailable", ServiceUnavailable.default_detail), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "internal error; the request may be retried"), status=500)
    return defaults.server_error(request)
