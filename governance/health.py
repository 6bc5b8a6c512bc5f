from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from governance.models import CircuitBreaker, Node, NodeHeartbeat, TradingState

# A node is alive when it beat within this many seconds (it beats every few).
HEARTBEAT_FRESH_SECONDS = 15


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
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except Exception:
        return "down"


def health_report() -> dict:
    database_ok = _database_ok()
    broker = _broker_state()
    nodes, trading, breakers, required = {}, {"enabled": False, "reason": "database unavailable"}, [], 2
    if database_ok:
        fresh_after = timezone.now() - timedelta(seconds=HEARTBEAT_FRESH_SECONDS)
        beats = {hb.node: hb.last_heartbeat for hb in NodeHeartbeat.objects.all()}
        for node in Node.values:
            last = beats.get(node)
            nodes[node] = {"alive": bool(last and last >= fresh_after), "last_heartbeat": last.isoformat() if last else None}
        state = TradingState.objects.filter(pk=1).first()
        trading = {"enabled": bool(state and state.enabled), "reason": state.reason if state else "halted by default"}
        breakers = [{"name": b.name, "tripped": b.tripped} for b in CircuitBreaker.objects.order_by("name")]
        from governance.selectors import ruleset_current

        ruleset = ruleset_current()
        required = ruleset.quorum_required if ruleset else 2
    alive = sum(1 for n in nodes.values() if n["alive"])
    if not database_ok or broker == "down" or alive < required:
        status = "down"
    elif alive < len(Node.values):
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "database": "ok" if database_ok else "down",
        "broker": broker,
        "nodes": nodes,
        "trading": trading,
        "circuit_breakers": breakers,
    }
