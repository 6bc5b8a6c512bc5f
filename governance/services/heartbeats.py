import socket

from django.utils import timezone

from governance.models import WorkerHeartbeat


def worker_heartbeat(*, kind: str, key_id: str = "") -> WorkerHeartbeat:
    """Record that a worker of `kind` (a node: with the key it signs with) is running now."""
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        kind=kind, defaults={"last_heartbeat": timezone.now(), "key_id": key_id, "host": socket.gethostname()}
    )
    return beat
