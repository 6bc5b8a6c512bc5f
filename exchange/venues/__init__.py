"""Which venue the router talks to: settings.CHRONOSX_VENUE.

`sandbox` is the in-process venue. Any other name is a ccxt exchange id (`weex`),
configured from settings named after it: `<ID>_API_KEY`, `<ID>_API_SECRET`,
`<ID>_API_PASSPHRASE`, `<ID>_DEMO`, `<ID>_BASE_URL`, and
`CHRONOSX_<ID>_MARKET` (spot | swap). Adding another ccxt exchange is those settings.
"""

import hashlib
import threading

from django.conf import settings

from exchange.venues.base import (
    OrderRequest,
    Venue,
    VenueError,
    VenueFill,
    VenueNotConfigured,
    VenueOrder,
    VenueOrderNotFound,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
    VenueUnknown,
)
from exchange.venues.sandbox import SandboxVenue

__all__ = [
    "OrderRequest", "Venue", "VenueError", "VenueFill", "VenueNotConfigured", "VenueOrder",
    "VenueOrderNotFound", "VenueRateLimited", "VenueRejected", "VenueUnavailable", "VenueUnknown",
    "SandboxVenue", "venue_current", "venue_for", "venue_config",
]

# One client per thread: a ccxt client is not meant to be shared by concurrent calls.
_local = threading.local()


def venue_config(name: str) -> dict:
    """The constructor arguments of the ccxt venue `name`, read from settings only."""
    prefix = name.upper()
    return {
        "name": name,
        "exchange_id": name,
        "api_key": getattr(settings, f"{prefix}_API_KEY", None),
        "secret": getattr(settings, f"{prefix}_API_SECRET", None),
        "password": getattr(settings, f"{prefix}_API_PASSPHRASE", None),
        "demo": bool(getattr(settings, f"{prefix}_DEMO", False)),
        "base_url": getattr(settings, f"{prefix}_BASE_URL", None),
        "market_type": getattr(settings, f"CHRONOSX_{prefix}_MARKET", "spot"),
        "timeout_ms": settings.CHRONOSX_VENUE_TIMEOUT_MS,
        "rate_limit": settings.CHRONOSX_VENUE_RATE_LIMIT,
    }


def venue_current() -> Venue:
    """The configured venue for new orders. Raises VenueNotConfigured (no credential in its message)."""
    return venue_for(settings.CHRONOSX_VENUE)


def venue_for(name: str) -> Venue:
    """The venue an order was placed on (Order.venue), built from settings."""
    if name == "sandbox":
        return SandboxVenue()
    from exchange.venues.ccxt_venue import CcxtVenue

    config = venue_config(name)
    # Rebuilt when any setting changes; the fingerprint keeps secrets out of the cache key's text.
    fingerprint = hashlib.sha256(repr(sorted(config.items())).encode()).hexdigest()
    cached = getattr(_local, "venue", None)
    if cached is None or cached[0] != fingerprint:
        _local.venue = (fingerprint, CcxtVenue(**config))
    return _local.venue[1]
