"""Automatic circuit breakers, fed by every venue call the router makes. Tripping is
governance's breaker_trip (audited); only an operator resets (manage.py breaker reset).
The call statistics are governance's VenueHealth record, which the execution node reads."""

import time

from django.conf import settings

from exchange.venues import (
    Venue,
    VenueError,
    VenueOrderNotFound,
    VenueRejected,
    VenueUnavailable,
    VenueUnknown,
    venue_current,
)
from governance.services import alerts, controls

VENUE_ERRORS = "venue_errors"
VENUE_LATENCY = "venue_latency"
RECONCILIATION_MISMATCH = "reconciliation_mismatch"
ACTOR = "exchange:breakers"


def venue_call(venue: Venue, method: str, **kwargs):
    """One venue call, timed and counted for the automatic breakers."""
    started = time.monotonic()
    try:
        result = getattr(venue, method)(**kwargs)
    except (VenueRejected, VenueUnknown, VenueUnavailable) as exc:
        venue_call_failed(venue=venue.name, summary=f"{method}: {exc.summary}")
        raise
    except VenueOrderNotFound:
        # A definite answer, not a failure.
        venue_call_ok(venue=venue.name, latency_ms=_elapsed_ms(started), in_process=venue.in_process)
        raise
    venue_call_ok(venue=venue.name, latency_ms=_elapsed_ms(started), in_process=venue.in_process)
    return result


def _elapsed_ms(started: float) -> int:
    """Only the call itself: started right before it, read right after, nothing else between."""
    return int((time.monotonic() - started) * 1000)


def venue_call_ok(*, venue: str, latency_ms: int, in_process: bool = False) -> None:
    """A venue answered (an answer, not an error): the error streak ends; a slow answer of a
    venue across the network trips venue_latency. The in-process sandbox "answers" with this
    process's own database writes: its time is the product's load, not a venue's latency."""
    controls.venue_call_ok(venue=venue, latency_ms=latency_ms)
    limit = settings.CHRONOSX_BREAKER_VENUE_LATENCY_MS
    if latency_ms > limit and not in_process:
        controls.breaker_trip(name=VENUE_LATENCY, actor=ACTOR, reason=f"{venue} answered in {latency_ms} ms (limit {limit} ms)")


def venue_call_failed(*, venue: str, summary: str) -> None:
    """A venue error or reject; N in a row trip venue_errors. `summary` is already credential-free."""
    streak = controls.venue_call_failed(venue=venue, summary=summary)
    limit = settings.CHRONOSX_BREAKER_VENUE_ERRORS
    if streak >= limit:
        controls.breaker_trip(
            name=VENUE_ERRORS,
            actor=ACTOR,
            reason=f"{streak} consecutive {venue} errors or rejects; last: {summary}"[:500],
        )
        # The streak is spent on this trip; after a reset it counts from zero again.
        controls.venue_error_streak_reset(venue=venue)


def reconciliation_mismatch(*, venue: str, client_order_id: str, detail: str) -> None:
    """The venue and our record of an order disagree: trip the breaker (alerted once, as a
    trip) and alert this mismatch itself, since later ones find the breaker already tripped."""
    controls.breaker_trip(name=RECONCILIATION_MISMATCH, actor=ACTOR, reason=f"{venue} order {client_order_id}: {detail}"[:500])
    alerts.alert_raise(
        kind=alerts.RECONCILIATION_MISMATCH,
        subject=f"Reconciliation mismatch at {venue}, order {client_order_id}: {detail}"[:300],
        actor=ACTOR,
        details={"venue": venue, "client_order_id": client_order_id, "detail": detail},
    )


def venue_probe() -> tuple[bool, str]:
    """Ask the configured venue whether it can take orders now, and record the answer for
    the execution node. Only the router (or the embedded process) calls this: it alone holds
    the venue's credentials. Never mentions a credential."""
    name = settings.CHRONOSX_VENUE
    try:
        venue = venue_current()
        answer = venue.health(probe=True)
        healthy, live = answer["status"] == "ok", venue.live
        detail = f"{venue.name} ({'live' if live else 'not live'}) {answer['status']}"
    except VenueError as exc:
        healthy, live, detail = False, False, exc.summary
    controls.venue_probe_record(venue=name, live=live, healthy=healthy, detail=detail)
    return healthy, detail
