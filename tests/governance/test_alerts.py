"""Alerts by email and webhook: sent once after the commit that raised them, retried with
backoff when the receiver fails, every attempt audited, and never in the way of the change.

The webhook receiver is a real HTTP server on a thread of the test; delivery runs as in the
embedded default (a thread of this process), so these tests commit for real."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from governance.models import WorkerHeartbeat
from governance.services.alerts import alert_raise
from governance.services.controls import breaker_trip, trading_halt, trading_reduce_only
from governance.services.sweep import proposals_sweep
from governance.tasks import alert_deliver_task
from ledger.models import AuditEvent


class Receiver:
    """A webhook receiver: answers each POST with the next status of `statuses` (then 200)."""

    def __init__(self, statuses=(), delay=0.0):
        self.requests, self.statuses, self.delay = [], list(statuses), delay
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/desk-secret-token"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def alerting(settings):
    settings.CHRONOSX_ALERT_EMAILS = ["desk@example.com", "risk@example.com"]
    settings.CHRONOSX_ALERT_BACKOFF_SECONDS = 0.05
    settings.CHRONOSX_ALERT_ATTEMPTS = 4
    settings.CHRONOSX_ALERT_TIMEOUT_SECONDS = 2
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return settings


def audited(kind, count, timeout=10.0):
    """Wait until `count` events of `kind` are written (by the delivery thread); return them."""
    deadline = time.monotonic() + timeout
    while True:
        events = list(AuditEvent.objects.filter(kind=kind).order_by("id"))
        if len(events) >= count or time.monotonic() > deadline:
            return [json.loads(e.payload) for e in events]
        time.sleep(0.02)


pytestmark = pytest.mark.django_db(transaction=True)


def test_a_breaker_trip_arrives_once_with_the_breaker_the_reason_and_the_user(alerting, receiver):
    hook = receiver()
    alerting.CHRONOSX_ALERT_WEBHOOK = hook.url

    breaker_trip(name="manual_kill", actor="operator:alice", reason="fat-finger on the desk")

    sent = audited("alert.sent", 2)
    assert sorted(e["channel"] for e in sent) == ["email", "webhook"]
    time.sleep(0.2)  # anything sent twice would have arrived by now
    assert len(hook.requests) == 1
    request = hook.requests[0]
    assert request["path"] == "/hooks/desk-secret-token"
    assert request["headers"]["Content-Type"] == "application/json"
    alert = request["json"]
    assert alert["kind"] == "breaker.tripped"
    assert alert["details"] == {"breaker": "manual_kill", "reason": "fat-finger on the desk", "user": "operator:alice"}
    assert alert["actor"] == "operator:alice"
    assert request["headers"]["Idempotency-Key"] == alert["id"]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["desk@example.com", "risk@example.com"]
    assert "manual_kill" in message.subject and "fat-finger on the desk" in message.body and "operator:alice" in message.body
    assert not AuditEvent.objects.filter(kind="alert.failed").exists()

    # Tripping a breaker already tripped changes nothing and alerts nobody again.
    breaker_trip(name="manual_kill", actor="operator:bob", reason="again")
    time.sleep(0.3)
    assert len(hook.requests) == 1 and len(mail.outbox) == 1


def test_a_failing_webhook_is_retried_with_each_attempt_audited(alerting, receiver):
    hook = receiver(statuses=[500, 503])
    alerting.CHRONOSX_ALERT_EMAILS = []
    alerting.CHRONOSX_ALERT_WEBHOOK = hook.url

    breaker_trip(name="manual_kill", actor="operator:alice", reason="test the pager")

    sent = audited("alert.sent", 1)
    assert [e["attempt"] for e in sent] == [3]
    failed = [json.loads(e.payload) for e in AuditEvent.objects.filter(kind="alert.failed").order_by("id")]
    assert [(e["attempt"], e["error"], e["retrying"]) for e in failed] == [(1, "HTTP 500", True), (2, "HTTP 503", True)]
    assert len(hook.requests) == 3
    assert len({r["json"]["id"] for r in hook.requests}) == 1  # the same alert each time


def test_a_webhook_that_never_answers_is_given_up_after_the_last_attempt_without_naming_its_url(alerting):
    alerting.CHRONOSX_ALERT_EMAILS = []
    alerting.CHRONOSX_ALERT_WEBHOOK = "http://127.0.0.1:9/hooks/desk-secret-token"  # discard port: refused

    trading_halt(actor="operator:alice", reason="end of day")

    failed = audited("alert.failed", 4)
    assert [(e["attempt"], e["retrying"]) for e in failed] == [(1, True), (2, True), (3, True), (4, False)]
    assert all(e["error"] == "ConnectionError" and e["channel"] == "webhook" for e in failed)
    assert not AuditEvent.objects.filter(kind="alert.sent").exists()
    assert not AuditEvent.objects.filter(payload__contains="desk-secret-token").exists()


def test_a_slow_receiver_does_not_hold_up_the_change_that_raised_the_alert(alerting, receiver):
    hook = receiver(delay=1.5)
    alerting.CHRONOSX_ALERT_EMAILS = []
    alerting.CHRONOSX_ALERT_WEBHOOK = hook.url

    started = time.monotonic()
    trading_reduce_only(actor="operator:alice", reason="thin book")
    assert time.monotonic() - started < 1.0

    sent = audited("alert.sent", 1)
    assert len(sent) == 1
    alert = hook.requests[0]["json"]
    assert alert["kind"] == "trading.state"
    assert alert["details"] == {"state": "reduce_only", "previous": "halted", "reason": "thin book", "user": "operator:alice", "kill": False}


def test_nothing_is_sent_before_the_transaction_commits_and_nothing_when_it_rolls_back(alerting, receiver):
    hook = receiver()
    alerting.CHRONOSX_ALERT_EMAILS = []
    alerting.CHRONOSX_ALERT_WEBHOOK = hook.url

    with pytest.raises(RuntimeError), transaction.atomic():
        breaker_trip(name="manual_kill", actor="operator:alice", reason="never committed")
        raise RuntimeError("rolled back")
    time.sleep(0.3)
    assert hook.requests == [] and not AuditEvent.objects.filter(kind__startswith="alert.").exists()


def test_with_no_channel_configured_nothing_is_sent_or_audited(alerting):
    alerting.CHRONOSX_ALERT_EMAILS = []
    alerting.CHRONOSX_ALERT_WEBHOOK = ""
    assert alert_raise(kind="breaker.tripped", subject="x", actor="a", details={}) is None
    breaker_trip(name="manual_kill", actor="operator:alice", reason="quiet")
    time.sleep(0.2)
    assert not AuditEvent.objects.filter(kind__startswith="alert.").exists()


def test_a_node_that_stops_beating_is_alerted_once_per_outage(alerting, receiver):
    hook = receiver()
    alerting.CHRONOSX_ALERT_EMAILS = []
    alerting.CHRONOSX_ALERT_WEBHOOK = hook.url
    now = timezone.now()
    WorkerHeartbeat.objects.create(kind="risk", last_heartbeat=now - timedelta(minutes=5), host="node-a")
    WorkerHeartbeat.objects.create(kind="portfolio", last_heartbeat=now, host="node-b")

    def sweep(at):
        WorkerHeartbeat.objects.filter(kind="portfolio").update(last_heartbeat=at)  # this one keeps beating
        return proposals_sweep(now=at)["nodes_down"]

    assert sweep(now) == ["risk"]
    assert sweep(now + timedelta(seconds=30)) == []
    audited("alert.sent", 1)
    assert [r["json"]["details"]["node"] for r in hook.requests] == ["risk"]
    assert hook.requests[0]["json"]["kind"] == "node.down"

    # It beats again, then stops again: a new outage, a new alert.
    WorkerHeartbeat.objects.filter(kind="risk").update(last_heartbeat=now + timedelta(minutes=1))
    assert sweep(now + timedelta(minutes=1, seconds=5)) == []
    assert sweep(now + timedelta(minutes=5)) == ["risk"]
    audited("alert.sent", 2)
    assert len(hook.requests) == 2


def test_the_governance_queue_task_retries_until_the_last_attempt(alerting, receiver):
    """With a broker, delivery is a Celery task on the governance queue that retries itself
    (applied here in-process, where Celery runs the retries at once)."""
    hook = receiver(statuses=[500, 500, 500, 500, 500])
    alerting.CHRONOSX_ALERT_EMAILS = []
    alerting.CHRONOSX_ALERT_WEBHOOK = hook.url
    text = json.dumps({"id": "a1", "kind": "breaker.tripped", "subject": "s", "actor": "a", "details": {}, "raised_at": "t"})

    alert_deliver_task.apply(args=[text, "webhook"])

    assert len(hook.requests) == 4
    failed = [json.loads(e.payload) for e in AuditEvent.objects.filter(kind="alert.failed").order_by("id")]
    assert [(e["attempt"], e["retrying"]) for e in failed] == [(1, True), (2, True), (3, True), (4, False)]
