"""Alerts: what a desk must hear about at once (a breaker trips, a node goes down, a
reconciliation mismatch, a trading-state change, a force-execution), by email to
CHRONOSX_ALERT_EMAILS and, when CHRONOSX_ALERT_WEBHOOK is set, as a JSON POST to it.

`alert_raise` is called inside the transaction that records the event; each channel's delivery
is enqueued only once that commits (pipeline stage ALERT: the governance queue, or a thread of
this process in the embedded default), and retried with backoff there. A slow or failing
receiver never holds up, or fails, the change that raised the alert. Every attempt is audited:
`alert.sent`, or `alert.failed` with the error and whether it will be tried again. The webhook's
URL is never written anywhere (it often carries a token).
"""

import json
import logging
import uuid
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from chronosx import pipeline
from chronosx.canonical import canonical_json
from governance.models import Node, WorkerHeartbeat
from ledger.models import AuditEvent
from ledger.services import audit_record

log = logging.getLogger(__name__)

EMAIL, WEBHOOK = "email", "webhook"
ACTOR = "alerts"

BREAKER_TRIPPED = "breaker.tripped"
NODE_DOWN = "node.down"
RECONCILIATION_MISMATCH = "reconciliation.mismatch"
TRADING_STATE = "trading.state"
FORCE_EXECUTED = "force.executed"
KINDS = (BREAKER_TRIPPED, NODE_DOWN, RECONCILIATION_MISMATCH, TRADING_STATE, FORCE_EXECUTED)


def alert_channels() -> list[str]:
    """The channels configured now: email when there are recipients, the webhook when set."""
    channels = []
    if settings.CHRONOSX_ALERT_EMAILS:
        channels.append(EMAIL)
    if settings.CHRONOSX_ALERT_WEBHOOK:
        channels.append(WEBHOOK)
    return channels


def alert_raise(*, kind: str, subject: str, actor: str, details: dict) -> dict | None:
    """Send an alert on every configured channel once the caller's transaction commits.
    Returns the alert (None when no channel is configured: nothing is sent or audited)."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    channels = alert_channels()
    if not channels:
        return None
    alert = {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "subject": subject,
        "actor": actor,
        "details": details,
        "raised_at": timezone.now().isoformat(),
    }
    text = canonical_json(alert)
    for channel in channels:
        pipeline.after_commit(pipeline.ALERT, text, channel)
    return alert


def _email_body(alert: dict) -> str:
    lines = [alert["subject"], "", f"kind: {alert['kind']}", f"by: {alert['actor']}", f"at: {alert['raised_at']}"]
    lines += [f"{key}: {value}" for key, value in sorted(alert["details"].items())]
    lines += ["", f"alert id: {alert['id']}"]
    return "\n".join(lines)


def _send_email(alert: dict) -> None:
    send_mail(
        subject=f"[ChronosX] {alert['subject']}",
        message=_email_body(alert),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=settings.CHRONOSX_ALERT_EMAILS,
    )


def _post_webhook(alert: dict) -> None:
    response = requests.post(
        settings.CHRONOSX_ALERT_WEBHOOK,
        data=json.dumps(alert),
        headers={"Content-Type": "application/json", "Idempotency-Key": alert["id"]},
        timeout=settings.CHRONOSX_ALERT_TIMEOUT_SECONDS,
        allow_redirects=False,
    )
    if not 200 <= response.status_code < 300:
        raise _WebhookRefused(f"HTTP {response.status_code}")


class _WebhookRefused(Exception):
    pass


def _error_summary(exc: Exception) -> str:
    """What went wrong, without the URL (requests puts it in its messages) or a password."""
    if isinstance(exc, _WebhookRefused):
        return str(exc)
    if isinstance(exc, requests.RequestException):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"[:300]


def alert_deliver(*, alert_text: str, channel: str, attempt: int, final: bool) -> bool:
    """One attempt at one channel; audited either way. True when it was delivered."""
    alert = json.loads(alert_text)
    payload = {"alert": alert["id"], "kind": alert["kind"], "subject": alert["subject"], "channel": channel, "attempt": attempt}
    try:
        if channel == EMAIL:
            _send_email(alert)
        elif channel == WEBHOOK:
            _post_webhook(alert)
        else:
            raise ValueError(f"unknown alert channel {channel!r}")
    except Exception as exc:  # any failure of a receiver is an outcome to record, never a crash
        summary = _error_summary(exc)
        log.warning("alert %s via %s failed (attempt %s): %s", alert["id"], channel, attempt, summary)
        audit_record(kind="alert.failed", actor=ACTOR, payload={**payload, "error": summary, "retrying": not final})
        return False
    audit_record(kind="alert.sent", actor=ACTOR, payload=payload)
    return True


def alert_retry_delay(attempt: int) -> float:
    """Seconds to wait before the attempt after `attempt`: the backoff, doubled each time, at most 5 minutes."""
    return min(settings.CHRONOSX_ALERT_BACKOFF_SECONDS * 2 ** (attempt - 1), 300.0)


# --- a node that stopped beating ------------------------------------------------------


def nodes_down_alert(*, now=None, fresh_seconds: float) -> list[str]:
    """Alert once for each MPC node whose heartbeat went stale (a node that never beat is not
    "down", it was never started). One `node.down` audit event per outage, written under the
    heartbeat row's lock, so two sweepers never both alert; a beat afterwards starts a new one."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=fresh_seconds)
    down = []
    for node in Node.values:
        with transaction.atomic():
            beat = WorkerHeartbeat.objects.select_for_update().filter(kind=node, last_heartbeat__lt=stale_before).first()
            if beat is None:
                continue
            already = AuditEvent.objects.filter(
                kind=NODE_DOWN, created_at__gte=beat.last_heartbeat, payload__contains=f'"node":"{node}"'
            ).exists()
            if already:
                continue
            details = {"node": node, "last_heartbeat": beat.last_heartbeat.isoformat(), "host": beat.host}
            audit_record(kind=NODE_DOWN, actor="sweeper", payload=details)
            alert_raise(
                kind=NODE_DOWN,
                subject=f"MPC node {node} is down: no heartbeat since {beat.last_heartbeat:%Y-%m-%d %H:%M:%S} UTC",
                actor="sweeper",
                details=details,
            )
            down.append(node)
    return down
