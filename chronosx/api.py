"""API plumbing shared by every app: strict JSON in, and the errors of the one envelope.

(The handler that renders them is chronosx.errors: DRF imports this module's parser while
it loads its own views, so this module must not import them.)"""

import json
from decimal import Decimal

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

# JSON nested deeper than this is refused before it is parsed: the proposal is flat, and a
# deep body would otherwise cost a recursion per level (1,000 levels: a RecursionError).
MAX_JSON_DEPTH = 16


class TooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "request body is larger than 64 KiB"


class IdempotencyKeyRequired(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "idempotency_key_required"
    default_detail = "an Idempotency-Key header of 1-64 characters [A-Za-z0-9_.:-] is required"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"
    default_detail = "the database is unavailable; nothing was stored, retry shortly"


class Overloaded(exceptions.APIException):
    """The pipeline is full (CHRONOSX_MAX_PENDING_PROPOSALS awaiting a decision, votes or routing):
    nothing was stored."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "overloaded"
    default_detail = "too many proposals await a decision, votes or routing; nothing was stored, retry shortly"
    wait = 1


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_conflict"
    default_detail = "this Idempotency-Key was already used with a different body"


def _reject_constant(name):
    raise ValueError(f"{name} is not a valid JSON number")


def json_depth(raw: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings don't count)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _no_duplicate_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


class StrictJSONParser(JSONParser):
    """JSON with exact decimals (never float), no NaN/Infinity, no duplicate keys, at most 64 KiB."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise TooLarge()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"malformed JSON: {exc}")
        if json_depth(text) > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(
                text,
                parse_float=Decimal,
                parse_constant=_reject_constant,
                object_pairs_hook=_no_duplicate_keys,
            )
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"malformed JSON: {exc}")
        try:
            # "\ud800" alone is valid JSON but no character: UTF-8 cannot carry it, so it could
            # be neither stored nor echoed back in an error message (a 500 either way).
            json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise exceptions.ParseError(f"malformed JSON: unpaired surrogate U+{ord(exc.object[exc.start]):04X}")
        return data


def check_body_size(request):
    """Refuse an oversized body by its declared length, before reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.API_MAX_BODY_BYTES:
        raise TooLarge()


CODES = {
    exceptions.ValidationError: "invalid",
    exceptions.ParseError: "invalid",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    ServiceUnavailable: "unavailable",
}


def error_body(code, message, fields=None):
    body = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return body
