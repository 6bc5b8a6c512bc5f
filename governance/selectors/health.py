"""GET /api/v1/health/: can ChronosX accept proposals, and is every kind of worker there?"""

from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from governance.models import CircuitBreaker, Node, WorkerHeartbeat, WorkerKind
from governance.selectors.controls import quorum_in_force, trading_state

# A worker is alive when it beat within this many seconds (it beats every few).
HEARTBEAT_FRESH_SECONDS = 15
# The kinds of process besides the nodes that the pipeline needs (the nodes are listed apart).
PIPELINE_WORKERS = (WorkerKind.GOVERNANCE, WorkerKind.ROUTER, WorkerKind.SCHEDULER)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _broker_state() -> str:
    if settings.EMBEDDED_TASKS:
        return "embedded"
    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except Exception:
        return "down"


def _liveness(beats: dict, kinds) -> dict:
    fresh_after = timezone.now() - timedelta(seconds=HEARTBEAT_FRESH_SECONDS)
    out = {}
    for kind in kinds:
        last = beats.get(kind)
        out[kind] = {"alive": bool(last and last >= fresh_after), "last_heartbeat": last.isoformat() if last else None}
    return out


def health_report() -> dict:
    database_ok = _database_ok()
    broker = _broker_state()
    nodes, workers, breakers = {}, {}, []
    trading = {"enabled": False, "reason": "database unavailable", "state": "halted"}
    required = quorum_in_force() if database_ok else len(Node.values)
    if database_ok:
        beats = dict(WorkerHeartbeat.objects.values_list("kind", "last_heartbeat"))
        nodes = _liveness(beats, Node.values)
        workers = _liveness(beats, PIPELINE_WORKERS)
        state = trading_state()
        trading = {"enabled": state.enabled, "reason": state.reason, "state": state.state}
        breakers = [{"name": b.name, "tripped": b.tripped} for b in CircuitBreaker.objects.order_by("name")]
    alive = sum(1 for n in nodes.values() if n["alive"])
    # Down: proposals cannot be stored, or no quorum can form. With the broker away they are
    # still accepted and stored, and decided once it is back: degraded, like a missing worker.
    if not database_ok or alive < required:
        status = "down"
    elif broker == "down" or alive < len(Node.values) or not all(w["alive"] for w in workers.values()):
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "database": "ok" if database_ok else "down",
        "broker": broker,
        "nodes": nodes,
        "workers": workers,
        "trading": trading,
        "circuit_breakers": breakers,
    }
