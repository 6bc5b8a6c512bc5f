"""replay_decision: every decision replays against the ruleset version it used; an altered row is caught."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from governance.models import AssetLimit, Decision, Ruleset
from governance.replay import decision_replay
from governance.services.rulesets import ruleset_new_draft, ruleset_publish
from tests.builders import post_proposal, proposal_body


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("replay_decision", *args, stdout=out, stderr=err)
    return out.getvalue()


def run_failing(*args):
    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("replay_decision", *args, stdout=out, stderr=StringIO())
    return out.getvalue(), str(failure.value)


def propose(api, **overrides):
    response = post_proposal(api, proposal_body(**overrides))
    assert response.status_code == 202, response.content
    return response.json()


def republish_stricter(actor="risk-officer"):
    """Rules edited and republished: v2 wants more confidence and caps BTC much lower."""
    current = Ruleset.objects.filter(status="published").order_by("-version").first()
    draft = ruleset_new_draft(source=current, actor=actor)
    draft.min_confidence = "0.99"
    draft.max_order_notional = "100"
    draft.save()
    AssetLimit.objects.filter(ruleset=draft, instrument__symbol="BTCUSDT").update(max_position_quantity="0.0005")
    return ruleset_publish(ruleset=draft, actor=actor)


@pytest.fixture
def history(api, trading_enabled):
    """Decisions under v1, then rules republished, then decisions under v2."""
    v1 = [
        propose(api),  # approve
        propose(api, quantity="1000"),  # modify
        propose(api, confidence=0.1),  # block
    ]
    v2 = republish_stricter()
    after = [propose(api), propose(api, confidence=0.995, quantity="0.0010")]
    return v1, v2, after


def test_every_decision_replays_identical_after_the_rules_were_republished(history):
    v1, v2, after = history
    assert [p["decision"]["outcome"] for p in v1] == ["approve", "modify", "block"]
    # the same sound proposal is now blocked: the new version really is in force
    assert after[0]["decision"]["outcome"] == "block"
    assert {p["decision"]["ruleset_version"] for p in after} == {v2.version}
    assert {p["decision"]["ruleset_version"] for p in v1} == {v2.version - 1}

    assert run("--all").splitlines() == ["identical: 5, differing: 0"]
    for proposal in v1 + after:
        assert run(proposal["id"]) == "identical\n"


def test_a_decision_whose_stored_outcome_was_altered_is_reported_differing(history):
    v1, _, _ = history
    blocked = v1[2]["id"]
    Decision.objects.filter(proposal_id=blocked).update(outcome="approve", approved_quantity="0.0010")

    out, error = run_failing(blocked)
    assert "does not match its replay" in error
    assert 'outcome: stored "approve", replayed "block"' in out
    assert 'approved_quantity: stored "0.0010", replayed null' in out
    assert "recomputed from the stored fields" in out  # the row no longer matches its own digest

    out, error = run_failing("--all")
    assert out.splitlines()[-1] == "identical: 4, differing: 1"
    assert f"differs: {blocked}" in out
    assert "1 of 5 decisions" in error


def test_a_rewritten_row_with_a_fresh_digest_is_still_caught_by_the_audited_digest(history):
    from governance.digests import decision_digest

    approved = history[0][0]["id"]
    decision = Decision.objects.get(proposal_id=approved)
    inputs = decision.inputs
    inputs["proposal"]["confidence"] = "0.50"  # as if the agent had been less sure
    checks = decision.checks
    digest = decision_digest(
        proposal_id=decision.proposal_id, outcome=decision.outcome, approved_quantity=decision.approved_quantity,
        ruleset_version=decision.ruleset_version, checks=checks, inputs=inputs,
    )
    Decision.objects.filter(proposal_id=approved).update(inputs=inputs, digest=digest)

    differences = decision_replay(decision=Decision.objects.select_related("ruleset", "proposal").get(proposal_id=approved))
    assert 'inputs.proposal.confidence: decided on "0.50", proposal row now "0.95"' in differences
    assert 'outcome: stored "approve", replayed "block"' in differences
    assert any(d.startswith("checks[min_confidence].passed: stored true, replayed false") for d in differences)
    assert any(d.startswith(f"digest: stored {digest}, audited ") for d in differences)


def test_a_decision_that_claims_other_rules_than_its_version_holds_is_reported(history):
    approved = history[0][0]["id"]
    decision = Decision.objects.get(proposal_id=approved)
    inputs = decision.inputs
    inputs["rules"]["max_order_notional"] = "5"
    Decision.objects.filter(proposal_id=approved).update(inputs=inputs)
    out, _ = run_failing(approved)
    assert f'inputs.rules.max_order_notional: decision used "5", ruleset v{decision.ruleset_version} holds "10000"' in out


def test_replay_all_counts_only_the_time_range_asked_for(history):
    _, v2, after = history
    since = v2.published_at.isoformat()
    assert run("--all", "--since", since).splitlines() == ["identical: 2, differing: 0"]
    assert run("--all", "--until", since).splitlines() == ["identical: 3, differing: 0"]
    future = (timezone.now() + timezone.timedelta(days=1)).isoformat()
    assert run("--all", "--since", future).splitlines() == ["identical: 0, differing: 0"]


def test_replay_refuses_an_unknown_proposal_and_bad_arguments(db):
    with pytest.raises(CommandError, match="no decision for proposal"):
        call_command("replay_decision", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandError, match="not a proposal id"):
        call_command("replay_decision", "nope")
    with pytest.raises(CommandError, match="either a PROPOSAL_ID or --all"):
        call_command("replay_decision")
    with pytest.raises(CommandError, match="with its UTC offset"):
        call_command("replay_decision", "--all", "--since", "2026-01-01T00:00:00")
