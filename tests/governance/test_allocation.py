"""Capital allocation: a portfolio risk budget split across strategies by the ruleset's
policy, fixed weights or weights scaled by trailing realized PnL within bounds; the change
shows in `ruleset diff` and in the impact replay before approval."""

import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from governance import engine
from governance.models import Ruleset
from governance.parameters import BY_NAME
from governance.selectors.controls import ruleset_current
from governance.services import rulesets
from tests.builders import post_proposal, proposal_body, staff_member
from tests.governance.test_engine import check, decide

POLICY = {
    "allocation_policy": "pnl_scaled",
    "portfolio_risk_budget": "100000",
    "allocation_weights": "demo=0.6,trend=0.4",
    "allocation_window_days": 30,
    "allocation_scale_min": "0.5",
    "allocation_scale_max": "1.5",
}


def test_fixed_weights_split_the_portfolio_risk_budget():
    assert engine.allocated_budgets({**POLICY, "allocation_policy": "fixed"}, {"demo": "-99999"}) == {
        "demo": engine.d("60000.00"),
        "trend": engine.d("40000.00"),
    }


@pytest.mark.parametrize(
    "pnl,budget",
    [
        ("0", "60000.00"),  # no PnL: the fixed share
        ("6000", "66000.00"),  # +10% of its share: scaled up by 1.1
        ("-12000", "48000.00"),  # -20%: scaled down by 0.8
        ("30000", "90000.00"),  # exactly at the upper bound 1.5
        ("30000.01", "90000.00"),  # one step past: held at the bound
        ("-30000", "30000.00"),  # exactly at the lower bound 0.5
        ("-30000.01", "30000.00"),  # one step past: held at the bound
    ],
)
def test_weights_scaled_by_trailing_pnl_move_the_budget_within_its_bounds(pnl, budget):
    assert engine.allocated_budgets(POLICY, {"demo": pnl})["demo"] == engine.d(budget)


def test_the_allocated_budget_is_what_the_strategy_budget_check_applies():
    # 0.0100 BTC at 50,000 = 500 on top of 47,600 of exposure: inside 48,000 (PnL -12,000), not inside 30,000.
    result = decide(rules=POLICY, context={"strategy_exposure": "47500", "trailing_pnl": "-12000"})
    assert check(result, "strategy_budget") == {
        "rule": "strategy_budget",
        "passed": True,
        "detail": "strategy demo exposure after order 48000.0000 <= maximum 48000.00",
    }
    result = decide(rules=POLICY, context={"strategy_exposure": "47500", "trailing_pnl": "-30000"})
    assert result["outcome"] == "block"  # nothing fits: the strategy is already past its budget
    assert check(result, "strategy_budget")["detail"] == "strategy demo exposure after order 48000.0000 > maximum 30000.00"


def test_a_strategy_without_a_weight_has_no_budget():
    result = decide(proposal={"strategy": "other"}, rules={**POLICY, "allocation_policy": "fixed"})
    assert not check(result, "strategy_budget")["passed"]


@pytest.mark.parametrize("text", ["demo=0.6,trend=0.5", "demo=0", "demo=0.5,demo=0.1", "demo:0.5", "Demo=0.5", "demo=1.5", "demo=0.5,"])
def test_allocation_weights_are_refused_unless_each_in_range_and_together_at_most_one(text):
    with pytest.raises(ValidationError, match="allocation_weights: must be comma-separated SLUG=WEIGHT"):
        BY_NAME["allocation_weights"].parse(text)


def test_a_ruleset_without_a_policy_keeps_its_strategy_budgets():
    assert engine.allocated_budgets({"allocation_policy": "none"}) == {}
    assert check(decide(), "strategy_budget")["detail"].endswith("maximum 30000")


def test_the_allocation_shows_in_the_diff_and_the_impact_replay_before_approval(api, trading_enabled):
    assert post_proposal(api, proposal_body(quantity="0.0010")).status_code == 202  # 65 of demo exposure
    alice = staff_member("risk_officer", "alice")
    draft = rulesets.ruleset_new_draft(source=ruleset_current(), actor="operator:alice", user=alice.username)
    rulesets.ruleset_edit(
        ruleset_id=draft.pk,
        changes={"allocation_policy": "fixed", "portfolio_risk_budget": "50000", "allocation_weights": "demo=0.001"},
        actor="operator:alice",
        user="alice",
    )
    out = io.StringIO()
    call_command("ruleset", "diff", str(draft.version), stdout=out)
    lines = out.getvalue().splitlines()
    assert "allocation_policy: none -> fixed" in lines
    assert "allocation_weights: none -> demo=0.001" in lines
    assert "allocation.demo: none -> 50.00" in lines
    out = io.StringIO()
    call_command("ruleset", "impact", str(draft.version), stdout=out)
    report = json.loads(out.getvalue())
    # The 0.001 BTC buy (65) no longer fits demo's allocated 50: cut down to 0.0007 (45.5).
    assert report["changed"] == 1 and report["by_rule"] == {"strategy_budget": 1}
    assert report["transitions"]["approve->modify"] == 1
    assert Ruleset.objects.get(pk=draft.pk).status == "draft"
