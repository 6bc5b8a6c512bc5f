"""Impact replay: a draft re-evaluated on the stored proposals of the last N days, against
recorded history with hand-computed counts; the report's progress; the command and the admin."""

import io
import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from governance import impact as pure
from governance.models import Decision, ImpactReport, Ruleset
from governance.selectors.controls import ruleset_current
from governance.services import impact, rulesets
from governance.tasks import impact_replay_task
from ledger.models import AuditEvent
from tests.builders import approved_proposal, client_for, make_agent, post_proposal, proposal_body, staff_member

ADMIN = "/admin/governance/ruleset/"
NO_TRANSITIONS = dict.fromkeys(pure.TRANSITIONS, 0)


def check(rule, passed, detail="d"):
    return {"rule": rule, "passed": passed, "detail": detail}


# --- the comparison, pure -------------------------------------------------------------------


def test_a_transition_is_a_changed_outcome_or_a_modify_of_another_size():
    assert pure.transition(stored_outcome="approve", stored_quantity="1", replayed={"outcome": "block", "approved_quantity": None}) == "approve->block"
    assert pure.transition(stored_outcome="block", stored_quantity=None, replayed={"outcome": "modify", "approved_quantity": "0.5"}) == "block->modify"
    assert pure.transition(stored_outcome="modify", stored_quantity="0.1538", replayed={"outcome": "modify", "approved_quantity": "0.0769"}) == "modify->modify"
    # The same quantity written otherwise is the same quantity.
    assert pure.transition(stored_outcome="modify", stored_quantity="0.0050", replayed={"outcome": "modify", "approved_quantity": "0.005"}) is None
    assert pure.transition(stored_outcome="approve", stored_quantity="1", replayed={"outcome": "approve", "approved_quantity": "1"}) is None


def test_a_change_counts_under_the_rules_whose_verdict_flipped_else_the_cuts_that_moved():
    stored = [check("min_confidence", True), check("max_order_notional", False, "> maximum 10000")]
    assert pure.rules_changed(stored, [check("min_confidence", False), check("max_order_notional", False, "> maximum 10000")]) == ["min_confidence"]
    assert pure.rules_changed(stored, [check("min_confidence", True), check("max_order_notional", False, "> maximum 5000")]) == ["max_order_notional"]
    # A rule the stored decision did not have counts as passed there.
    assert pure.rules_changed(stored, [*stored, check("daily_loss", False)]) == ["daily_loss"]
    assert pure.rules_changed("not a list", [check("slippage", False)]) == ["slippage"]


def test_a_chunk_reports_what_it_cannot_evaluate_and_goes_on():
    rules = {"version": 9}
    rows = [("p1", 1, "approve", "1", "{not json", "{}", "[]"), ("p2", 2, "block", None, None, None, None)]
    result = pure.evaluate_chunk(rules, rows)
    assert result.evaluated == 0 and [e[1] for e in result.errors] == ["p1", "p2"]


# --- recorded history ------------------------------------------------------------------------


@pytest.fixture
def history(api, trading_enabled):
    """Eight proposals decided by v1 (min_confidence 0.60, max_order_notional 10000, BTC at
    65,000), the last of them decided 8 days ago; and draft v2: min_confidence 0.80,
    max_order_notional 5000. By hand, against v2:
        #1 demo  conf 0.95 qty 0.0010 (65)        approve              -> approve   unchanged
        #2 demo  conf 0.70 qty 0.0010             approve              -> block     min_confidence
        #3 demo  conf 0.50 qty 0.0010             block                -> block     unchanged
        #4 demo  conf 0.95 qty 0.1000 (6,500)     approve              -> modify 0.0769   max_order_notional
        #5 demo  conf 0.95 qty 1.0000 (65,000)    modify 0.1538        -> modify 0.0769   max_order_notional (cut moved)
        #6 demo  conf 0.70 qty 1.0000             modify 0.1538        -> block     min_confidence
        #7 other conf 0.70 qty 0.0010             approve              -> block     min_confidence
        #8 demo  conf 0.70 qty 0.0010, 8 days ago approve              -> block     (outside 7 days)
    """
    other = client_for(make_agent(strategies=("other",))[1])
    specs = [(api, "0.95", "0.0010"), (api, "0.70", "0.0010"), (api, "0.50", "0.0010"), (api, "0.95", "0.1000"),
             (api, "0.95", "1.0000"), (api, "0.70", "1.0000"), (other, "0.70", "0.0010"), (api, "0.70", "0.0010")]
    ids = []
    for client, confidence, quantity in specs:
        body = proposal_body(confidence=float(confidence), quantity=quantity, strategy="other" if client is other else "demo")
        response = post_proposal(client, body)
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    stored = {str(d.proposal_id): (d.outcome, d.approved_quantity and str(d.approved_quantity)) for d in Decision.objects.all()}
    assert [stored[i] for i in ids] == [
        ("approve", "0.0010"), ("approve", "0.0010"), ("block", None), ("approve", "0.1000"),
        ("modify", "0.1538"), ("modify", "0.1538"), ("approve", "0.0010"), ("approve", "0.0010"),
    ]
    Decision.objects.filter(proposal_id=ids[7]).update(decided_at=timezone.now() - timedelta(days=8))
    alice = staff_member("risk_officer", "alice")
    draft = rulesets.ruleset_new_draft(source=ruleset_current(), actor="operator:alice", user=alice.username)
    rulesets.ruleset_edit(ruleset_id=draft.pk, changes={"min_confidence": "0.80", "max_order_notional": "5000"},
                          actor="operator:alice", user="alice")
    return ids, Ruleset.objects.get(pk=draft.pk)


def replay(draft, **options) -> dict:
    out = io.StringIO()
    call_command("ruleset", "impact", str(draft.version), *sum((["--" + k, str(v)] for k, v in options.items()), []), stdout=out)
    (line,) = out.getvalue().splitlines()
    return json.loads(line)


def test_the_impact_of_a_draft_on_recorded_history_is_the_hand_computed_one(history):
    ids, draft = history
    assert replay(draft) == {
        "evaluated": 7,
        "changed": 5,
        "transitions": {**NO_TRANSITIONS, "approve->block": 2, "approve->modify": 1, "modify->modify": 1, "modify->block": 1},
        "by_rule": {"min_confidence": 3, "max_order_notional": 2},
        "by_strategy": {"demo": 4, "other": 1},
        "proposals": [ids[1], ids[3], ids[4], ids[5], ids[6]],
        "errors": [],
    }


def test_the_window_is_the_last_n_days_of_decisions(history):
    ids, draft = history
    result = replay(draft, days=10)
    assert (result["evaluated"], result["changed"], result["transitions"]["approve->block"]) == (8, 6, 3)
    assert result["proposals"] == [ids[7], ids[1], ids[3], ids[4], ids[5], ids[6]]  # the oldest decision first
    assert result["by_strategy"] == {"demo": 5, "other": 1}


def test_the_version_in_force_replayed_on_its_own_decisions_changes_nothing(history):
    result = replay(ruleset_current())
    assert (result["evaluated"], result["changed"], result["transitions"]) == (7, 0, NO_TRANSITIONS)


def test_a_replay_in_worker_processes_is_the_same_as_in_this_one(history):
    _, draft = history
    results = []
    for workers in (0, 2):
        report = impact.impact_request(ruleset=draft, days=7, actor="test")
        results.append(impact.impact_run(report_id=report.pk, workers=workers, chunk_size=2).result)
    assert results[0] == results[1] and results[0]["changed"] == 5


def test_the_report_keeps_its_progress_and_is_audited_once_done(history):
    _, draft = history
    seen = []
    original = pure.impact_replay

    def spy(**kwargs):
        progress = kwargs.pop("on_progress")
        return original(**kwargs, on_progress=lambda n: (seen.append(n), progress(n)))

    report = impact.impact_request(ruleset=draft, days=7, actor="operator:alice")
    pytest.MonkeyPatch.setattr(pytest.MonkeyPatch(), impact, "impact_replay", spy)
    try:
        report = impact.impact_run(report_id=report.pk, chunk_size=3)
    finally:
        impact.impact_replay = original
    assert seen == [3, 6, 7]
    assert (report.status, report.total, report.done, report.percent) == ("done", 7, 7, 100)
    assert report.params_digest == rulesets.params_digest(rulesets.ruleset_params(ruleset=draft))
    event = json.loads(AuditEvent.objects.filter(kind="ruleset.impact_replayed").latest("id").payload)
    assert (event["version"], event["changed"], event["evaluated"], event["report"]) == (2, 5, 7, report.pk)


def test_a_stored_decision_that_cannot_be_replayed_is_listed_not_a_crash(history, api):
    _, draft = history
    broken = approved_proposal(agent=api.agent)  # a decision row with no stored inputs
    result = replay(draft)
    assert result["evaluated"] == 7 and result["changed"] == 5
    assert [e["proposal"] for e in result["errors"]] == [str(broken.id)]


def test_a_report_is_run_by_one_worker_only_and_a_failure_is_kept_on_it(history, monkeypatch):
    _, draft = history
    report = impact.impact_request(ruleset=draft, days=7, actor="test")
    assert impact_replay_task.apply(args=[report.pk]).get() == "done"
    assert impact.impact_run(report_id=report.pk) is None  # claimed already
    monkeypatch.setattr(impact, "impact_replay", lambda **kwargs: 1 / 0)
    failed = impact.impact_run(report_id=impact.impact_request(ruleset=draft, days=7, actor="test").pk)
    assert (failed.status, failed.error) == ("failed", "ZeroDivisionError: division by zero")


def test_days_must_be_at_least_one(history):
    _, draft = history
    with pytest.raises(ValueError, match="days: must be an integer 1 <= x <= 3660"):
        impact.impact_request(ruleset=draft, days=0, actor="test")


# --- the admin ---------------------------------------------------------------------------------


def test_the_approver_sees_the_replay_on_the_draft_page(history, settings):
    settings.EMBEDDED_TASKS = False  # the Celery task runs eagerly, here
    ids, draft = history
    rulesets.ruleset_submit(ruleset_id=draft.pk, actor="operator:alice", user="alice")
    bob = Client()
    bob.force_login(staff_member("risk_officer", "bob"))
    assert bob.post(f"{ADMIN}{draft.pk}/impact/", {"days": "7"}).status_code == 302
    page = bob.get(f"{ADMIN}{draft.pk}/change/").content.decode()
    assert '<strong id="impact-changed">5</strong> of 7 decisions would change' in page
    assert '<tr><td>approve-&gt;block</td><td class="num">2</td></tr>' in page
    assert '<tr><td>min_confidence</td><td class="num">3</td></tr>' in page
    assert '<tr><td>other</td><td class="num">1</td></tr>' in page
    assert all(f"/admin/governance/proposal/{i}/change/" in page for i in (ids[1], ids[3], ids[4], ids[5], ids[6]))
    assert "Approve and publish v2" in page


def test_a_running_replay_shows_a_progress_bar_that_polls_until_it_is_done(history):
    _, draft = history
    report = impact.impact_request(ruleset=draft, days=7, actor="test")
    ImpactReport.objects.filter(pk=report.pk).update(status="running", total=100_000, done=25_000)
    viewer = Client()
    viewer.force_login(staff_member("viewer", "vic"))
    page = viewer.get(f"{ADMIN}{draft.pk}/change/").content.decode()
    assert f'hx-get="{ADMIN}{draft.pk}/impact/" hx-trigger="every 1s"' in page
    assert '<progress max="100000" value="25000">25 %</progress>' in page
    panel = viewer.get(f"{ADMIN}{draft.pk}/impact/", HTTP_HX_REQUEST="true")
    assert "25000 of 100000 decisions (25 %)" in panel.content.decode() and "HX-Refresh" not in panel
    ImpactReport.objects.filter(pk=report.pk).update(status="done", result=replay(draft))
    panel = viewer.get(f"{ADMIN}{draft.pk}/impact/", HTTP_HX_REQUEST="true")
    assert panel["HX-Refresh"] == "true" and "hx-trigger" not in panel.content.decode()


@pytest.mark.django_db(transaction=True)
def test_with_no_broker_the_replay_runs_on_a_thread_and_the_request_answers_at_once(history, settings):
    settings.EMBEDDED_TASKS = True
    _, draft = history
    bob = Client()
    bob.force_login(staff_member("risk_officer", "bob"))
    started = time.monotonic()
    assert bob.post(f"{ADMIN}{draft.pk}/impact/", {"days": "7"}).status_code == 302
    # Waited for without reading the report meanwhile: the test's in-memory SQLite locks whole
    # tables between connections (the server's file database, in WAL mode, does not).
    for thread in [t for t in threading.enumerate() if t.name.startswith("impact-")]:
        thread.join(timeout=30)
    assert time.monotonic() - started < 30
    report = ImpactReport.objects.get(ruleset=draft)
    assert report.status == "done" and report.result["changed"] == 5
