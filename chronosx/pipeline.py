"""The pipeline: which stage follows which, and how the next one is enqueued.

    agent API ──▶ evaluate ──▶ vote (risk, portfolio, execution) ──▶ route ──▶ settle
    (governance)  (governance)  (the three MPC nodes, a queue each)   (exchange: router, reconciler)

    kill switch (governance: halt) ──▶ cancel (exchange: router, every open order)

A service that has finished its part calls `after_commit(STAGE, …)`: the next stage is
enqueued once the transaction that recorded this one has committed, never before (the
worker must find the rows it is asked about), and a broker that is down loses nothing
(the periodic sweepers pick the work up again). Each app registers the Celery task that
runs its own stage (governance/tasks.py, exchange/tasks.py), so no service imports the
task, or the module, of another app's stage. Periodic jobs (sweeps, reconciliation,
heartbeats) are in settings.CELERY_BEAT_SCHEDULE and chronosx/workers.py.

With no broker (the embedded default) Celery runs a task where it is enqueued, so the
whole pipeline runs in the process that committed the proposal.
"""

import logging

from django.db import transaction

log = logging.getLogger(__name__)

EVALUATE = "evaluate"  # governance: decide a proposal
VOTE = "vote"  # governance: one MPC node reviews and signs (queue = the node)
ROUTE = "route"  # exchange: send an approved proposal's order to the venue
CANCEL = "cancel"  # exchange: the kill switch's second half, cancel every open order (after the halt commits)
ALERT = "alert"  # governance: deliver one alert on one channel (email, webhook), retried with backoff
STAGES = (EVALUATE, VOTE, ROUTE, CANCEL, ALERT)

# stage -> (task, default queue, start)
_registry: dict[str, tuple] = {}


def register(stage: str, task, *, queue: str | None = None, start=None) -> None:
    """Called by the app that runs `stage`, when its tasks module is imported. `start(*args)`,
    when given, is called instead of the task's apply_async (alerts: a thread of this process in
    the embedded default, so a slow receiver never holds up the request that raised them)."""
    if stage not in STAGES:
        raise ValueError(f"unknown pipeline stage {stage!r}")
    _registry[stage] = (task, queue, start)


def enqueue(stage: str, *args: str, queue: str | None = None) -> None:
    """Enqueue `stage` now. Raises when the broker refuses: callers that must not fail catch it."""
    try:
        task, default_queue, start = _registry[stage]
    except KeyError:
        raise LookupError(f"no task registered for pipeline stage {stage!r}") from None
    if start is not None:
        start(*[str(a) for a in args])
        return
    task.apply_async(args=[str(a) for a in args], queue=queue or default_queue)


def after_commit(stage: str, *args, queue: str | None = None) -> None:
    """Enqueue `stage` once the current transaction commits. A send that fails is logged,
    not raised: the row is committed, and the sweeper of that stage sends it again."""
    transaction.on_commit(lambda: enqueue(stage, *args, queue=queue), robust=True)
