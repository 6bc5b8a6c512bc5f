"""Prometheus metrics: what the pipeline did, and how long each stage took.

Counters of proposals received, decisions (by outcome), votes (by node and verdict),
proposal and order status changes; histograms of the stage times that bench/pipeline.py
reports, measured from the proposal's `received_at`: decided, approved (quorum met) and
filled. Each is recorded once the transaction that made the change has committed, so a
rolled-back attempt counts nothing.

Every process of the stack (the ASGI workers, the governance, node and router workers)
records its own; with PROMETHEUS_MULTIPROC_DIR set (the stack sets it, one folder per
machine) prometheus-client keeps them in files there and `/metrics` adds them up. Without
it (the embedded default: one process) they live in memory.

`/metrics` answers only on loopback and only to requests that did not come through a
proxy: nginx never forwards it, and refusing an X-Forwarded-For keeps it so if a proxy
rule ever did.
"""

import ipaddress
import os

from django.db import transaction
from django.http import HttpResponse, HttpResponseNotFound
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client import CONTENT_TYPE_LATEST

# Seconds from received to each stage: a fast decision takes milliseconds, a quorum that
# waits for a slow node up to its timeout.
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

PROPOSALS = Counter("chronosx_proposals_total", "Proposals received (new ones; idempotent repeats not counted)")
DECISIONS = Counter("chronosx_decisions_total", "Decisions made by the rule engine", ["outcome"])
VOTES = Counter("chronosx_votes_total", "Signed node votes recorded", ["node", "verdict"])
PROPOSAL_STATUS = Counter("chronosx_proposal_status_total", "Proposals reaching a status", ["status"])
ORDERS = Counter("chronosx_orders_total", "Orders reaching a status", ["status"])
STAGE_SECONDS = Histogram(
    "chronosx_stage_seconds",
    "Seconds from a proposal's receipt to a stage: decided, approved (quorum met), filled",
    ["stage"],
    buckets=STAGE_BUCKETS,
)

# The proposal statuses whose time since receipt is a stage of the pipeline.
TIMED_STATUSES = {"approved": "approved", "filled": "filled"}


def _after_commit(function) -> None:
    transaction.on_commit(function, robust=True)


def _since(received_at, at) -> float:
    return max(0.0, (at - received_at).total_seconds())


def proposal_received() -> None:
    _after_commit(PROPOSALS.inc)


def decision_made(*, outcome: str, received_at, decided_at) -> None:
    def record():
        DECISIONS.labels(outcome=outcome).inc()
        STAGE_SECONDS.labels(stage="decided").observe(_since(received_at, decided_at))

    _after_commit(record)


def vote_cast(*, node: str, verdict: str) -> None:
    _after_commit(VOTES.labels(node=node, verdict=verdict).inc)


def proposal_status(*, status: str, received_at, at) -> None:
    def record():
        PROPOSAL_STATUS.labels(status=status).inc()
        stage = TIMED_STATUSES.get(status)
        if stage and received_at is not None:
            STAGE_SECONDS.labels(stage=stage).observe(_since(received_at, at))

    _after_commit(record)


def order_status(*, status: str) -> None:
    _after_commit(ORDERS.labels(status=status).inc)


def exposition() -> bytes:
    """The text format of every metric: of all this machine's processes in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def _from_loopback(request) -> bool:
    if request.META.get("HTTP_X_FORWARDED_FOR") or request.META.get("HTTP_X_REAL_IP"):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics_view(request):
    if not _from_loopback(request):
        return HttpResponseNotFound(b"", content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
