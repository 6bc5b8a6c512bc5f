"""Execution services: the router (router.py), the reconciler and sweeper (reconcile.py),
and the automatic breakers (breakers.py)."""

from exchange.services.reconcile import orders_reconcile, orders_sweep
from exchange.services.router import (
    client_order_id_for,
    order_apply,
    order_refresh,
    order_reject,
    order_resolve,
    order_route,
    order_settle,
)

__all__ = [
    "client_order_id_for", "order_apply", "order_refresh", "order_reject", "order_resolve", "order_route", "order_settle",
    "orders_reconcile", "orders_sweep",
]
