"""Alerts through a real governance worker on Redis: the trip's transaction commits and the
request is done; the worker posts the alert, retries a receiver that fails, and audits it."""

import json

import pytest

from governance.services.controls import breaker_trip
from ledger.models import AuditEvent
from tests.governance.test_alerts import Receiver
from tests.integration.workers import broker, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.integration


def test_a_governance_worker_delivers_a_breaker_alert_retrying_a_failing_webhook(settings, tmp_path):
    hook = Receiver(statuses=[502])
    settings.CHRONOSX_ALERT_EMAILS = []
    settings.CHRONOSX_ALERT_WEBHOOK = hook.url
    try:
        with broker(settings):
            worker = start_worker(
                queues=["governance"],
                name="alerts",
                log_dir=tmp_path,
                env={"CHRONOSX_ALERT_WEBHOOK": hook.url, "CHRONOSX_ALERT_BACKOFF_SECONDS": "0.2", "CHRONOSX_ALERT_ATTEMPTS": "3"},
            )
            try:
                breaker_trip(name="manual_kill", actor="operator:alice", reason="pager test")
                wait_for(lambda: AuditEvent.objects.filter(kind="alert.sent").exists(), timeout=60, what="alert.sent")
            finally:
                stop_worker(worker)
    finally:
        hook.close()
    assert len(hook.requests) == 2
    assert hook.requests[0]["json"] == hook.requests[1]["json"]
    assert hook.requests[1]["json"]["details"] == {"breaker": "manual_kill", "reason": "pager test", "user": "operator:alice"}
    [failed] = [json.loads(e.payload) for e in AuditEvent.objects.filter(kind="alert.failed")]
    [sent] = [json.loads(e.payload) for e in AuditEvent.objects.filter(kind="alert.sent")]
    assert (failed["attempt"], failed["error"], failed["retrying"]) == (1, "HTTP 502", True)
    assert (sent["attempt"], sent["channel"]) == (2, "webhook")
