"""Operator jobs (exports, chain verification, impact replays) run on a queue of their own,
never on the governance queue whose worker decides proposals."""

import pytest

from chronosx.background import REPORTS_QUEUE, background_start
from compliance.tasks import compliance_job_task
from governance.tasks import impact_replay_task


@pytest.mark.parametrize("task", [compliance_job_task, impact_replay_task])
def test_a_job_is_sent_to_the_reports_queue_once_its_transaction_commits(task, settings, monkeypatch, django_capture_on_commit_callbacks, db):
    settings.EMBEDDED_TASKS = False
    sent = []
    monkeypatch.setattr(task, "apply_async", lambda **kwargs: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        background_start(task=task, job_id=7, name="test")
        assert sent == []  # not before the commit: the worker must find the job's row
    assert sent == [{"args": [7], "queue": REPORTS_QUEUE}] and REPORTS_QUEUE != "governance"
