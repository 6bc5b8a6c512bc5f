"""MPC node key pairs. Placeholder until the signed-vote nodes exist."""


def node_keys_ensure() -> list[str]:
    return []
