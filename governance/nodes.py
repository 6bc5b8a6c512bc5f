"""MPC node processes. Placeholder until the signed-vote nodes exist."""


def embedded_heartbeat():
    """In embedded mode the in-process nodes beat here (no-op until nodes exist)."""
