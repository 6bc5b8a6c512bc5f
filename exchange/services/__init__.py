"""Execution services: order state (orders.py), sending (sending.py), settling and the
periodic reconciler (settling.py), and the automatic breakers and venue probe (breakers.py)."""
