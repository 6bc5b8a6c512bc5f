"""chronosx_client: the ChronosX agent API for Python (no Django needed)."""

from chronosx_client.ccxt_shaped import GovernedExchange, InvalidOrder, unified_order
from chronosx_client.client import FINAL, Client, Event
from chronosx_client.errors import (
    Blocked,
    ChronosXError,
    Forbidden,
    IdempotencyConflict,
    IdempotencyKeyRequired,
    Invalid,
    NotAuthenticated,
    NotFound,
    Overloaded,
    Throttled,
    TooLarge,
    Unavailable,
    UnsupportedMediaType,
    Unreachable,
)
from chronosx_client.receipts import receipt_problem, verify_receipt

__all__ = [
    "FINAL", "Blocked", "ChronosXError", "Client", "Event", "Forbidden", "GovernedExchange", "IdempotencyConflict",
    "IdempotencyKeyRequired", "Invalid", "InvalidOrder", "NotAuthenticated", "NotFound", "Overloaded", "Throttled",
    "TooLarge",
    "Unavailable", "UnsupportedMediaType", "Unreachable", "receipt_problem", "unified_order", "verify_receipt",
]
