"""Exceptions for the error envelope's codes: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations


class ChronosXError(Exception):
    """An error answer from ChronosX (or no answer at all: status 0, code `unreachable`)."""

    code = "error"

    def __init__(self, message: str, *, status: int = 0, code: str | None = None, fields: dict | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message, self.status, self.fields, self.retry_after = message, status, fields or {}, retry_after
        if code:
            self.code = code


class Invalid(ChronosXError):
    code = "invalid"


class IdempotencyKeyRequired(ChronosXError):
    code = "idempotency_key_required"


class NotAuthenticated(ChronosXError):
    code = "not_authenticated"


class Forbidden(ChronosXError):
    code = "forbidden"


class NotFound(ChronosXError):
    code = "not_found"


class IdempotencyConflict(ChronosXError):
    code = "idempotency_conflict"


class TooLarge(ChronosXError):
    code = "too_large"


class UnsupportedMediaType(ChronosXError):
    code = "unsupported_media_type"


class Throttled(ChronosXError):
    code = "throttled"


class Overloaded(ChronosXError):
    """Too many proposals await a decision, votes or routing; nothing was stored. Retried like `Throttled`."""

    code = "overloaded"


class Unavailable(ChronosXError):
    code = "unavailable"


class Unreachable(ChronosXError):
    code = "unreachable"


class Blocked(ChronosXError):
    """Governance said no: `decision.outcome` is `block`. `checks` holds the failed checks."""

    code = "blocked"

    def __init__(self, message: str, *, proposal: dict):
        super().__init__(message, status=200)
        self.proposal = proposal
        decision = proposal.get("decision") or {}
        self.checks = [check for check in decision.get("checks", []) if not check["passed"]]


BY_CODE = {cls.code: cls for cls in (
    Invalid, IdempotencyKeyRequired, NotAuthenticated, Forbidden, NotFound, IdempotencyConflict, TooLarge,
    UnsupportedMediaType, Throttled, Overloaded, Unavailable,
)}


def error_for(status: int, body, retry_after: float | None) -> ChronosXError:
    envelope = body.get("error") if isinstance(body, dict) else None
    if not isinstance(envelope, dict):
        return ChronosXError(f"HTTP {status} without the error envelope", status=status, retry_after=retry_after)
    code = str(envelope.get("code", "error"))
    cls = BY_CODE.get(code, ChronosXError)
    return cls(str(envelope.get("message", code)), status=status, code=code, fields=envelope.get("fields"),
               retry_after=retry_after)
