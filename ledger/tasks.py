from celery import shared_task

from ledger.services import audit_chain_extend


@shared_task(name="ledger.chain")
def audit_chain_task():
    """The audit sequencer's round (beat sends it every second)."""
    return audit_chain_extend()
