"""Canonical JSON: the one byte-exact form that is hashed and signed everywhere."""

import hashlib
import json
import uuid
from datetime import datetime
from decimal import Decimal


def decimal_text(value: Decimal) -> str:
    """A decimal's exact text, never in exponent form: 1E-8 -> "0.00000001"."""
    return format(value, "f")


def _default(value):
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not canonical JSON")


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
