"""Automatic circuit breakers fed by venue calls. Tripping is governance's
breaker_trip (audited); only an operator resets (manage.py breaker reset)."""

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from exchange.models import VenueHealth
from governance.services import breaker_trip

VENUE_ERRORS = "venue_errors"
VENUE_LATENCY = "venue_latency"
RECONCILIATION_MISMATCH = "reconciliation_mismatch"
ACTOR = "exchange:breakers"


def _health_row(venue: str):
    VenueHealth.objects.get_or_create(venue=venue)
    return VenueHealth.objects.filter(venue=venue)


def venue_call_ok(*, venue: str, latency_ms: int) -> None:
    """A venue answered (an answer, not an error): the error streak ends; a slow answer trips venue_latency."""
    _health_row(venue).update(consecutive_errors=0, last_ok_at=timezone.now(), last_latency_ms=latency_ms)
    limit = settings.CHRONOSX_BREAKER_VENUE_LATENCY_MS
    if latency_ms > limit:
        breaker_trip(name=VENUE_LATENCY, actor=ACTOR, reason=f"{venue} answered in {latency_ms} ms (limit {limit} ms)")


@transaction.atomic
def venue_call_failed(*, venue: str, summary: str) -> None:
    """A venue error or reject; N in a row trip venue_errors. `summary` is already credential-free."""
    rows = _health_row(venue)
    rows.update(consecutive_errors=F("consecutive_errors") + 1, last_error=summary[:300], last_error_at=timezone.now())
    health = rows.select_for_update().get()
    limit = settings.CHRONOSX_BREAKER_VENUE_ERRORS
    if health.consecutive_errors >= limit:
        breaker_trip(
            name=VENUE_ERRORS,
            actor=ACTOR,
            reason=f"{health.consecutive_errors} consecutive {venue} errors or rejects; last: {summary}"[:500],
        )
        # The streak is spent on this trip; after a reset it counts from zero again.
        rows.update(consecutive_errors=0)


def reconciliation_mismatch(*, venue: str, client_order_id: str, detail: str) -> None:
    breaker_trip(name=RECONCILIATION_MISMATCH, actor=ACTOR, reason=f"{venue} order {client_order_id}: {detail}"[:500])
