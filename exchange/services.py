"""Order routing. Placeholder until the router exists."""


def orders_sweep(*, now) -> dict:
    return {}


def orders_reconcile() -> dict:
    return {}
