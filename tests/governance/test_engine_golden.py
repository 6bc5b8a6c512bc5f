"""The rules table decides exactly as the engine did before it became a table.

engine_golden.json holds 2,044 inputs and the decisions the engine made on them
before the rewrite (commit 3ab030c): hand-written cases exactly at each limit and one
step past it, two failures at once, closes in each mode, caps a hair under a step,
decimals with more digits than the context keeps, and seeded random inputs. A stored
decision is what replay and the node quorum compare against, so every check's text
must come out byte for byte the same.

File format: "base" holds sound inputs; a case's "in" overrides the top-level keys of
each part (nested dicts replaced whole) and "drop" removes keys. "out" is
[outcome, approved_quantity, [[passed, detail], ...]] with the checks in
"check_order", a detail given either as text or as an index into "details" (texts
that recur are stored once), or {"raises": "ExceptionClassName"}.
"""

import copy
import json
from pathlib import Path

import pytest

from governance.engine import CHECK_ORDER, QUANTITY_BOUND, evaluate, rules_reviewed_by
from tests.builders import CONTRACT_ORDER, CONTRACT_ORDER_BEFORE_LOSS_LIMITS, CONTRACT_QUANTITY_BOUND

GOLDEN = json.loads(Path(__file__).with_name("engine_golden.json").read_text(encoding="utf-8"))
PARTS = ("proposal", "context", "rules")


def recorded_inputs(case):
    built = {part: {**copy.deepcopy(GOLDEN["base"][part]), **copy.deepcopy(case["in"].get(part, {}))} for part in PARTS}
    for part, keys in case.get("drop", {}).items():
        for key in keys:
            del built[part][key]
    return built


def recorded_output(case):
    out = case["out"]
    if isinstance(out, dict):
        return out
    outcome, approved_quantity, checks = out
    return {
        "outcome": outcome,
        "approved_quantity": approved_quantity,
        "checks": [
            {"rule": rule, "passed": passed, "detail": GOLDEN["details"][detail] if isinstance(detail, int) else detail}
            for rule, (passed, detail) in zip(GOLDEN["check_order"], checks, strict=True)
        ],
    }


def decide(inputs):
    try:
        return evaluate(**inputs)
    except Exception as exc:  # a few inputs the API refuses have always made the engine raise
        return {"raises": type(exc).__name__}


def test_every_recorded_decision_is_reproduced_byte_for_byte():
    differences = []
    for number, case in enumerate(GOLDEN["cases"]):
        expected, actual = recorded_output(case), decide(recorded_inputs(case))
        # Both: == alone would take 1 for True, the JSON text would not.
        if actual != expected or json.dumps(actual, sort_keys=True) != json.dumps(expected, sort_keys=True):
            differences.append(f"case {number} ({case['tag']}):\n  expected {expected}\n  actual   {actual}")
    assert not differences, f"{len(differences)} of {len(GOLDEN['cases'])} decisions differ; first:\n" + "\n".join(differences[:3])


def test_the_recorded_corpus_reaches_every_outcome_and_fails_every_rule():
    """Guard against a vacuous comparison (a truncated or regenerated-empty file)."""
    cases = GOLDEN["cases"]
    assert len(cases) >= 2000
    # Recorded under rulesets published before the loss limits: the fifteen checks they decide with.
    assert list(GOLDEN["check_order"]) == list(CONTRACT_ORDER_BEFORE_LOSS_LIMITS)
    decided = [recorded_output(case) for case in cases if isinstance(case["out"], list)]
    assert {d["outcome"] for d in decided} == {"approve", "modify", "block"}
    failing = {c["rule"] for d in decided for c in d["checks"] if not c["passed"]}
    assert failing == set(CONTRACT_ORDER_BEFORE_LOSS_LIMITS)
    closes = [case for case in cases if recorded_inputs(case)["proposal"].get("intent") == "close"]
    assert {recorded_output(case)["outcome"] for case in closes} == {"approve", "block"}


def test_the_derived_tables_follow_the_rules_table_and_the_contract():
    assert CHECK_ORDER == CONTRACT_ORDER
    assert QUANTITY_BOUND == CONTRACT_QUANTITY_BOUND


def test_every_rule_is_reviewed_by_exactly_one_node():
    reviewed = {node: rules_reviewed_by(node) for node in ("execution", "risk", "portfolio")}
    assert reviewed == {
        "execution": ("trading_enabled", "circuit_breaker", "instrument_enabled"),
        "risk": (
            "exits_enabled",
            "min_confidence",
            "signal_age",
            "slippage",
            "price_collar",
            "max_order_notional",
            "order_rate",
            "daily_loss",
            "drawdown",
            "loss_cooldown",
        ),
        "portfolio": ("max_position", "asset_exposure", "strategy_budget", "portfolio_exposure", "max_open_positions"),
    }
    everything = [rule for rules in reviewed.values() for rule in rules]
    assert sorted(everything) == sorted(CHECK_ORDER)
    assert len(everything) == len(set(everything))
    for rules in reviewed.values():
        assert list(rules) == [rule for rule in CHECK_ORDER if rule in rules], "names come in table order"


def test_an_unknown_node_is_refused_rather_than_reviewing_nothing():
    with pytest.raises(ValueError, match="riks"):
        rules_reviewed_by("riks")
