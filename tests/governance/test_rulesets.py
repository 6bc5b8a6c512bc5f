"""Rulesets: draft -> submitted -> published with four eyes, every parameter validated at its
bounds, published versions immutable, through the services, the admin and the `ruleset` command."""

import io
import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command, get_commands, load_command_class
from django.db import connections
from django.test import Client

from governance.models import AssetLimit, ImpactReport, Ruleset, StrategyBudget
from governance.parameters import BY_NAME, RULE_PARAMETERS
from governance.roles import PermissionDenied
from governance.selectors.controls import ruleset_current
from governance.services import rulesets
from governance.services.rulesets import FourEyesError, RulesetError
from ledger.models import AuditEvent
from tests.builders import post_proposal, proposal_body, staff_member

ADMIN = "/admin/governance/ruleset/"


@pytest.fixture
def officers(seeded):
    return [staff_member("risk_officer", name) for name in ("alice", "bob", "carol")]


@pytest.fixture
def draft(officers):
    """v2, copied from v1 by alice."""
    return rulesets.ruleset_new_draft(source=ruleset_current(), actor="operator:alice", user="alice")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def events(kind=None) -> int:
    rows = AuditEvent.objects.all()
    return rows.filter(kind=kind).count() if kind else rows.count()


def snapshot():
    """Everything a ruleset change could touch."""
    return (
        list(Ruleset.objects.order_by("version").values()),
        list(AssetLimit.objects.order_by("pk").values()),
        list(StrategyBudget.objects.order_by("pk").values()),
        events(),
    )


def edit(ruleset, user, **changes):
    return rulesets.ruleset_edit(ruleset_id=ruleset.pk, changes=changes, actor=f"operator:{user}", user=user)


def submit(ruleset, user):
    return rulesets.ruleset_submit(ruleset_id=ruleset.pk, actor=f"operator:{user}", user=user)


def approve(ruleset, user):
    return rulesets.ruleset_approve(ruleset_id=ruleset.pk, actor=f"operator:{user}", user=user)


def cli(argv, capsys, monkeypatch):
    """`manage.py ruleset …` as the shell runs it (run_from_argv: stderr and exit status), in this
    process so that it sees the test's database. Returns (exit status, stdout, stderr)."""
    monkeypatch.setattr(connections, "close_all", lambda: None)  # run_from_argv's, at its end
    command = load_command_class(get_commands()["ruleset"], "ruleset")
    try:
        command.run_from_argv(["manage.py", "ruleset", *argv])
        status = 0
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- every parameter at its bounds ---------------------------------------------------------

# (parameter, values allowed at its bounds, values one step past them or malformed)
BOUNDS = [
    ("min_confidence", ["0", "1", "0.60"], ["-0.01", "1.01", "1.0000001", "1.5"]),
    ("max_signal_age_seconds", ["0.001", "86400"], ["0", "-10", "86400.001"]),
    ("max_slippage_bps", ["0", "10000"], ["-1", "-0.01", "10000.01"]),
    ("max_price_deviation_bps", ["0", "10000"], ["-0.01", "10001"]),
    ("max_order_notional", ["0.01", "1000000000000000"], ["0", "-5", "1000000000000000.01"]),
    ("default_strategy_budget", ["0", "1000000000000000"], ["-0.01", "1000000000000001"]),
    ("max_gross_exposure", ["0.01", "1000000000000000"], ["0", "1000000000000000.1"]),
    ("max_open_positions", ["1", "100000"], ["0", "100001", "1.5", "-1"]),
    ("max_proposals_per_minute", ["1", "1000000"], ["0", "1000001"]),
    ("quorum_required", ["2", "3"], ["1", "4", "0"]),
    ("vote_timeout_seconds", ["0.001", "300"], ["0", "300.001", "-1"]),
    ("mode", ["alpha", "full"], ["beta", "ALPHA", ""]),
    ("max_daily_loss_strategy", ["0", "1000000000000000"], ["-0.01", "1000000000000000.01"]),
    ("max_daily_loss_asset", ["0", "1000000000000000"], ["-1", "1000000000000001"]),
    ("max_daily_loss_portfolio", ["0", "1000000000000000"], ["-0.000001", "1000000000000000.1"]),
    ("max_drawdown_strategy", ["0", "1000000000000000"], ["-0.01", "1000000000000001"]),
    ("max_drawdown_portfolio", ["0", "1000000000000000"], ["-1", "1000000000000000.01"]),
    ("loss_cooldown_losses", ["1", "1000"], ["0", "1001", "1.5", "-1"]),
    ("loss_cooldown_minutes", ["0", "10080"], ["-1", "10081", "0.5"]),
    ("allocation_policy", ["none", "fixed", "pnl_scaled"], ["scaled", "FIXED", ""]),
    ("portfolio_risk_budget", ["0", "1000000000000000"], ["-0.01", "1000000000000000.01"]),
    ("allocation_weights", ["demo=1", "demo=0.6,trend=0.4"], ["demo=1.01", "demo=0.6,trend=0.41", "demo=0", "demo", "x=0.1,x=0.1"]),
    ("allocation_window_days", ["1", "365"], ["0", "366"]),
    ("allocation_scale_min", ["0", "1"], ["-0.01", "1.01"]),
    ("allocation_scale_max", ["1", "10"], ["0.99", "10.01"]),
    (
        "force_hard_rules",
        ["order_rate", "max_order_notional,portfolio_exposure", "min_confidence,price_collar,asset_exposure"],
        ["trading_enabled", "circuit_breaker", "exits_enabled", "instrument_enabled", "nope", "order_rate,order_rate",
         "order_rate,", ",order_rate", "order_rate max_position"],
    ),
    ("assets.BTCUSDT.max_position_quantity", ["0", "1000000000000000"], ["-0.0001", "1000000000000000.5"]),
    ("assets.BTCUSDT.max_exposure", ["0", "1000000000000000"], ["-1", "1000000000000001"]),
    ("strategy_budgets.demo", ["0", "1000000000000000"], ["-1", "1000000000000001"]),
]
MALFORMED = ["1e3", " 1", "1 ", "NaN", "Infinity", "0x10", "1,5", "+1", "٣"]


def test_the_bounds_cover_every_parameter_of_the_table():
    assert {name for name, _, _ in BOUNDS if "." not in name} == set(BY_NAME) == set(Ruleset.PARAMETERS)


@pytest.mark.parametrize(("name", "allowed", "refused"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_each_parameter_takes_its_bounds_and_refuses_one_step_past_naming_itself_and_its_range(draft, name, allowed, refused):
    for value in refused + ([] if name == "mode" else MALFORMED):
        before = snapshot()
        with pytest.raises(ValidationError) as refusal:
            edit(draft, "alice", **{name: value})
        (message,) = refusal.value.message_dict[name]
        assert message.startswith(f"{name}: must be ") and ("<=" in message or " or " in message), message
        assert snapshot() == before, f"{name}={value!r} wrote something"
    for value in allowed:
        edit(draft, "alice", **{name: value})
        draft.refresh_from_db()
        assert rulesets.params_flat(rulesets.ruleset_params(ruleset=draft))[name] == value  # kept exactly as written


def test_the_allowed_ranges_read_as_documented():
    assert {p.name: p.allowed for p in RULE_PARAMETERS} == {
        "mode": "alpha or full",
        "min_confidence": "a decimal 0 <= x <= 1",
        "max_signal_age_seconds": "a decimal 0 < x <= 86400",
        "max_slippage_bps": "a decimal 0 <= x <= 10000",
        "max_price_deviation_bps": "a decimal 0 <= x <= 10000",
        "max_order_notional": "a decimal 0 < x <= 1000000000000000",
        "default_strategy_budget": "a decimal 0 <= x <= 1000000000000000",
        "max_gross_exposure": "a decimal 0 < x <= 1000000000000000",
        "max_open_positions": "an integer 1 <= x <= 100000",
        "max_proposals_per_minute": "an integer 1 <= x <= 1000000",
        "quorum_required": "2 or 3",
        "vote_timeout_seconds": "a decimal 0 < x <= 300",
        "max_daily_loss_strategy": "a decimal 0 <= x <= 1000000000000000",
        "max_daily_loss_asset": "a decimal 0 <= x <= 1000000000000000",
        "max_daily_loss_portfolio": "a decimal 0 <= x <= 1000000000000000",
        "max_drawdown_strategy": "a decimal 0 <= x <= 1000000000000000",
        "max_drawdown_portfolio": "a decimal 0 <= x <= 1000000000000000",
        "loss_cooldown_losses": "an integer 1 <= x <= 1000",
        "loss_cooldown_minutes": "an integer 0 <= x <= 10080",
        "allocation_policy": "none or fixed or pnl_scaled",
        "portfolio_risk_budget": "a decimal 0 <= x <= 1000000000000000",
        "allocation_weights": "comma-separated SLUG=WEIGHT, each strategy once, each weight 0 < w <= 1, together at most 1; or nothing",
        "allocation_window_days": "an integer 1 <= x <= 365",
        "allocation_scale_min": "a decimal 0 <= x <= 1",
        "allocation_scale_max": "a decimal 1 <= x <= 10",
        "force_hard_rules": (
            "comma-separated names, each at most once, of min_confidence, signal_age, slippage, price_collar, "
            "max_order_notional, max_position, asset_exposure, strategy_budget, portfolio_exposure, "
            "max_open_positions, order_rate, daily_loss, drawdown, loss_cooldown; or nothing"
        ),
    }


def test_the_values_of_the_report_are_refused_together_and_nothing_is_written(draft):
    before = snapshot()
    with pytest.raises(ValidationError) as refusal:
        edit(draft, "alice", min_confidence="1.5", max_order_notional="-5", max_slippage_bps="-1",
             max_signal_age_seconds="-10", vote_timeout_seconds="0", quorum_required="1")
    assert set(refusal.value.message_dict) == {
        "min_confidence", "max_order_notional", "max_slippage_bps", "max_signal_age_seconds", "vote_timeout_seconds", "quorum_required"
    }
    assert snapshot() == before


def test_a_value_written_past_the_service_is_caught_at_submission(draft):
    Ruleset.objects.filter(pk=draft.pk).update(max_signal_age_seconds="-10")
    AssetLimit.objects.filter(ruleset=draft, instrument__symbol="ETHUSDT").update(max_exposure="-1")
    with pytest.raises(ValidationError) as refusal:
        submit(draft, "alice")
    assert set(refusal.value.message_dict) == {"max_signal_age_seconds", "assets.ETHUSDT.max_exposure"}
    assert Ruleset.objects.get(pk=draft.pk).status == "draft"


def test_an_unknown_parameter_is_refused_with_the_list_of_parameters(draft):
    with pytest.raises(ValidationError) as refusal:
        edit(draft, "alice", min_confidance="0.7")
    assert "not a ruleset parameter; parameters are mode, min_confidence" in refusal.value.messages[0]
    with pytest.raises(ValidationError, match="no instrument DOGEUSDT"):
        edit(draft, "alice", **{"assets.DOGEUSDT.max_exposure": "1"})


# --- the lifecycle and four eyes ------------------------------------------------------------


def test_draft_submit_approve_by_another_officer_publishes_it_in_force_from_now(draft, api, trading_enabled):
    edit(draft, "alice", min_confidence="0.99", mode="full")
    submit(draft, "alice")
    published = approve(draft, "bob")
    assert (published.status, published.created_by, published.published_by) == ("published", "operator:alice", "bob")
    assert published.editors == ["alice"]
    assert ruleset_current().pk == draft.pk and published.params["min_confidence"] == "0.99"
    assert published.params["mode"] == "full"
    event = json.loads(AuditEvent.objects.filter(kind="ruleset.published").latest("id").payload)
    assert (event["version"], event["approved_by"], event["editors"], event["replaces"]) == (2, "bob", ["alice"], 1)
    body = post_proposal(api, proposal_body(confidence=0.95)).json()
    assert body["decision"]["ruleset_version"] == 2 and body["status"] == "blocked"  # 0.95 < 0.99


@pytest.mark.parametrize("approver", ["alice", "bob"])
def test_nobody_who_created_edited_or_submitted_a_draft_may_approve_it(draft, approver):
    edit(draft, "bob", max_order_notional="5000")  # alice created it, bob edited it
    submit(draft, "carol")  # carol submitted it
    for user in ("alice", "bob", "carol"):
        with pytest.raises(FourEyesError, match=f"{user} created, edited or submitted v2"):
            approve(draft, user)
    assert Ruleset.objects.get(pk=draft.pk).status == "submitted"
    assert events("ruleset.published") == 1  # v1's, by seed_demo


def test_an_edit_after_submission_sends_the_draft_back_to_draft_and_joins_the_editors(draft):
    submit(draft, "alice")
    edit(draft, "bob", max_slippage_bps="10")
    draft.refresh_from_db()
    assert (draft.status, draft.submitted_by, draft.editors) == ("draft", "", ["alice", "bob"])
    back = json.loads(AuditEvent.objects.filter(kind="ruleset.returned_to_draft").get().payload)
    assert back == {"version": 2, "from": "submitted", "to": "draft", "reason": "edited after submission"}
    with pytest.raises(RulesetError, match="only a submitted draft can be approved"):
        approve(draft, "carol")


def test_an_edit_that_changes_nothing_writes_nothing(draft):
    submit(draft, "alice")
    before = snapshot()
    assert edit(draft, "bob", min_confidence="0.60") == {}
    assert snapshot() == before


def test_a_change_is_audited_with_old_and_new_values(draft):
    edit(draft, "alice", min_confidence="0.65", **{"assets.BTCUSDT.max_exposure": "5000", "strategy_budgets.demo": "7"})
    payload = json.loads(AuditEvent.objects.filter(kind="ruleset.changed").get().payload)
    assert payload == {
        "version": 2,
        "changed": {
            "min_confidence": {"from": "0.60", "to": "0.65"},
            "assets.BTCUSDT.max_exposure": {"from": "1000000", "to": "5000"},
            "strategy_budgets.demo": {"from": "1000000", "to": "7"},
        },
    }


def test_a_published_version_never_changes_through_the_service(officers):
    v1 = ruleset_current()
    before = snapshot()
    for attempt in (lambda: edit(v1, "alice", min_confidence="0.7"), lambda: submit(v1, "alice"),
                    lambda: approve(v1, "bob"), lambda: rulesets.ruleset_discard(ruleset_id=v1.pk, actor="x")):
        with pytest.raises(RulesetError, match="published"):
            attempt()
    assert snapshot() == before


def test_a_draft_older_than_the_version_in_force_cannot_be_approved(draft):
    newer = rulesets.ruleset_new_draft(source=ruleset_current(), actor="operator:carol", user="carol")
    submit(draft, "alice")
    submit(newer, "carol")
    approve(newer, "bob")
    with pytest.raises(RulesetError, match="v3 was published after v2 was drafted"):
        approve(draft, "bob")
    assert ruleset_current().version == 3


def test_a_rollback_is_a_new_draft_of_the_old_version_through_the_same_four_eyes(draft):
    edit(draft, "alice", min_confidence="0.9", quorum_required="3")
    submit(draft, "alice")
    approve(draft, "bob")
    rollback = rulesets.ruleset_new_draft(source=Ruleset.objects.get(version=1), actor="operator:bob", user="bob")
    assert rulesets.ruleset_diff(ruleset=rollback) == [("min_confidence", "0.9", "0.60"), ("quorum_required", "3", "2")]
    submit(rollback, "bob")
    with pytest.raises(FourEyesError):
        approve(rollback, "bob")
    approve(rollback, "alice")  # alice edited v2, not v3
    current = ruleset_current()
    assert current.version == 3
    assert {k: v for k, v in current.params.items() if k != "version"} == {
        k: v for k, v in Ruleset.objects.get(version=1).params.items() if k != "version"
    }


# --- the command -----------------------------------------------------------------------------


def test_the_command_runs_the_four_eyes_lifecycle_and_refuses_self_approval(officers, capsys, monkeypatch):
    status, out, _ = cli(["draft", "--from", "1", "--user", "alice"], capsys, monkeypatch)
    assert status == 0 and out.splitlines()[-1] == "2"
    assert cli(["set", "2", "mode", "full", "--user", "alice"], capsys, monkeypatch)[:2] == (0, "v2 mode: alpha -> full\n")
    assert cli(["set", "2", "assets.BTCUSDT.max_exposure", "500000", "--user", "alice"], capsys, monkeypatch)[0] == 0
    assert cli(["submit", "2", "--user", "alice"], capsys, monkeypatch)[0] == 0

    before = snapshot()
    status, out, err = cli(["approve", "2", "--user", "alice"], capsys, monkeypatch)
    assert (status, out) == (1, "")
    assert err.startswith("four-eyes: alice created, edited or submitted v2") and err.count("\n") == 1
    assert snapshot() == before

    status, out, err = cli(["diff", "2"], capsys, monkeypatch)
    assert (status, out, err) == (0, "mode: alpha -> full\nassets.BTCUSDT.max_exposure: 1000000 -> 500000\n", "")

    status, out, _ = cli(["approve", "2", "--user", "bob"], capsys, monkeypatch)
    assert status == 0 and "approved by bob" in out
    assert ruleset_current().version == 2 and ruleset_current().published_by == "bob"
    assert cli(["diff", "2"], capsys, monkeypatch)[1] == ""  # the version in force


def test_the_command_edit_of_a_submitted_draft_sends_it_back(draft, capsys, monkeypatch):
    submit(draft, "alice")
    status, out, _ = cli(["set", "2", "max_slippage_bps", "10", "--user", "bob"], capsys, monkeypatch)
    assert status == 0 and out.splitlines() == ["v2 max_slippage_bps: 25 -> 10", "v2 was submitted: back to draft (submit it again)"]
    assert Ruleset.objects.get(pk=draft.pk).status == "draft"


@pytest.mark.parametrize(
    ("param", "value", "allowed"),
    [
        ("min_confidence", "1.5", "a decimal 0 <= x <= 1"),
        ("quorum_required", "1", "2 or 3"),
        ("vote_timeout_seconds", "0", "a decimal 0 < x <= 300"),
        ("assets.ETHUSDT.max_exposure", "-1", "a decimal 0 <= x <= 1000000000000000"),
        ("mode", "FULL", "alpha or full"),
    ],
)
def test_the_command_refuses_an_invalid_value_naming_the_parameter_and_its_range(draft, param, value, allowed, capsys, monkeypatch):
    before = snapshot()
    status, out, err = cli(["set", "2", param, value, "--user", "alice"], capsys, monkeypatch)
    assert (status, out) == (1, "")
    assert err == f"{param}: must be {allowed}; got '{value}'\n"
    assert snapshot() == before


@pytest.mark.parametrize("role", ["viewer", "operator", "compliance"])
@pytest.mark.parametrize("action", [["draft", "--from", "1"], ["set", "2", "min_confidence", "0.7"], ["submit", "2"], ["approve", "2"]])
def test_the_command_refuses_what_the_role_may_not_do(draft, role, action, capsys, monkeypatch):
    submit(draft, "alice")
    staff_member(role, "pat")
    before = snapshot()
    status, out, err = cli([*action, "--user", "pat"], capsys, monkeypatch)
    assert (status, out) == (1, "")
    assert err.startswith(f"permission denied: pat ({role}) may not ")
    assert snapshot() == before


def test_the_command_requires_a_staff_user_to_write(draft):
    for argv in (["draft", "--from", "1", "--user", "root"], ["approve", "2", "--user", "nobody"]):
        with pytest.raises(PermissionDenied, match="is not a staff user"):
            call_command("ruleset", *argv, stdout=io.StringIO())


def test_the_command_refuses_to_change_a_published_version(officers, capsys, monkeypatch):
    before = snapshot()
    status, _, err = cli(["set", "1", "min_confidence", "0.7", "--user", "alice"], capsys, monkeypatch)
    assert status == 1 and err.startswith("ruleset: v1 is published and never changes; make a new draft from it")
    assert snapshot() == before


# --- the admin ---------------------------------------------------------------------------------


def form_data(ruleset, **overrides):
    """The change form of `ruleset` as the page would post it, with `overrides`."""
    data = {name: str(getattr(ruleset, name)) for name in Ruleset.PARAMETERS}
    data["notes"] = ruleset.notes
    for prefix, rows, fields in (
        ("asset_limits", AssetLimit.objects.filter(ruleset=ruleset).order_by("pk"), ["instrument", "max_position_quantity", "max_exposure"]),
        ("strategy_budgets", StrategyBudget.objects.filter(ruleset=ruleset).order_by("pk"), ["strategy", "max_exposure"]),
    ):
        rows = list(rows)
        data.update({f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": str(len(rows)),
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
        for i, row in enumerate(rows):
            data[f"{prefix}-{i}-id"] = str(row.pk)
            data[f"{prefix}-{i}-ruleset"] = str(ruleset.pk)
            for field in fields:
                value = getattr(row, f"{field}_id") if field in ("instrument", "strategy") else getattr(row, field)
                data[f"{prefix}-{i}-{field}"] = str(value)
    data.update(overrides)
    return data


def test_a_get_of_the_add_page_creates_nothing_and_a_post_creates_one_draft(officers):
    alice = logged_in(officers[0])
    before = snapshot()
    for _ in range(2):
        page = alice.get(f"{ADMIN}add/")
        assert page.status_code == 200 and b"Create the draft" in page.content
    assert snapshot() == before
    response = alice.post(f"{ADMIN}add/", {"source": str(ruleset_current().pk)})
    draft = Ruleset.objects.get(version=2)
    assert response.status_code == 302 and response["Location"] == f"{ADMIN}{draft.pk}/change/"
    assert (draft.status, draft.created_by, draft.editors) == ("draft", "admin:alice", ["alice"])
    assert Ruleset.objects.count() == 2


def test_a_published_version_has_no_save_button_and_a_posted_change_is_refused_with_nothing_written(officers):
    alice = logged_in(officers[0])
    v1 = ruleset_current()
    page = alice.get(f"{ADMIN}{v1.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content and b'name="min_confidence"' not in page.content
    before = snapshot()
    response = alice.post(f"{ADMIN}{v1.pk}/change/", form_data(v1, min_confidence="0.1", mode="full"))
    assert response.status_code == 403
    assert snapshot() == before  # no row changed, no `ruleset.changed` event (SQLite) and no 500 (PostgreSQL)


def test_editing_a_draft_in_the_admin_goes_through_the_service_with_its_inlines(draft, officers):
    bob = logged_in(officers[1])
    submit(draft, "alice")
    data = form_data(draft, min_confidence="0.75", **{"asset_limits-1-DELETE": "on", "strategy_budgets-0-max_exposure": "5000"})
    response = bob.post(f"{ADMIN}{draft.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    draft.refresh_from_db()
    assert (draft.min_confidence, draft.status, draft.editors) == (Decimal("0.75"), "draft", ["alice", "bob"])
    assert list(draft.asset_limits.values_list("instrument__symbol", flat=True)) == ["BTCUSDT"]
    assert str(draft.strategy_budgets.get().max_exposure) == "5000"
    changed = json.loads(AuditEvent.objects.filter(kind="ruleset.changed").get().payload)["changed"]
    assert changed == {
        "min_confidence": {"from": "0.60", "to": "0.75"},
        "assets.ETHUSDT": {"from": "1000 / 1000000", "to": "none"},
        "strategy_budgets.demo": {"from": "1000000", "to": "5000"},
    }
    assert events("ruleset.returned_to_draft") == 1


def test_the_admin_form_refuses_the_values_of_the_report_naming_each_field_and_range(draft, officers):
    alice = logged_in(officers[0])
    before = snapshot()
    data = form_data(draft, min_confidence="1.5", max_order_notional="-5", max_slippage_bps="-1",
                     max_signal_age_seconds="-10", vote_timeout_seconds="0", quorum_required="1",
                     **{"asset_limits-0-max_exposure": "-3"})
    page = alice.post(f"{ADMIN}{draft.pk}/change/", data)
    assert page.status_code == 200
    text = page.content.decode()
    for message in ("min_confidence: must be a decimal 0 &lt;= x &lt;= 1; got &#x27;1.5&#x27;",
                    "max_order_notional: must be a decimal 0 &lt; x &lt;= 1000000000000000",
                    "max_slippage_bps: must be a decimal 0 &lt;= x &lt;= 10000",
                    "max_signal_age_seconds: must be a decimal 0 &lt; x &lt;= 86400",
                    "vote_timeout_seconds: must be a decimal 0 &lt; x &lt;= 300",
                    "quorum_required: must be 2 or 3",
                    "max_exposure: must be a decimal 0 &lt;= x"):
        assert message in text, message
    assert snapshot() == before


def test_the_draft_page_shows_its_diff_against_the_version_in_force(draft, officers):
    edit(draft, "alice", max_order_notional="5000", **{"assets.BTCUSDT.max_position_quantity": "2"})
    page = logged_in(officers[1]).get(f"{ADMIN}{draft.pk}/change/").content.decode()
    assert "Against the version in force (v1)" in page
    assert page.count("<tr><td>max_order_notional</td>") == 1 and '<td class="num">10000</td><td class="num">5000</td>' in page
    assert "<tr><td>assets.BTCUSDT.max_position_quantity</td>" in page


def test_self_approval_in_the_admin_is_not_offered_and_a_forged_post_is_403(draft, officers, settings):
    settings.EMBEDDED_TASKS = False  # the impact task runs eagerly, here
    submit(draft, "alice")
    alice = logged_in(officers[0])
    alice.post(f"{ADMIN}{draft.pk}/impact/", {"days": "7"})
    page = alice.get(f"{ADMIN}{draft.pk}/change/").content.decode()
    assert "Approve and publish" not in page
    assert "Four eyes: alice created, edited or submitted v2" in page
    before = snapshot()
    response = alice.post(f"{ADMIN}{draft.pk}/approve/")
    assert response.status_code == 403 and response.content.decode().startswith("four-eyes: alice created")
    assert snapshot() == before


def test_approving_in_the_admin_takes_a_fresh_impact_replay_then_publishes(draft, officers, settings):
    settings.EMBEDDED_TASKS = False
    edit(draft, "alice", min_confidence="0.7")
    submit(draft, "alice")
    bob = logged_in(officers[1])
    assert "run the impact replay of this content" in bob.get(f"{ADMIN}{draft.pk}/change/").content.decode()
    bob.post(f"{ADMIN}{draft.pk}/approve/")
    assert Ruleset.objects.get(pk=draft.pk).status == "submitted"  # not without the replay

    assert bob.post(f"{ADMIN}{draft.pk}/impact/", {"days": "7"}).status_code == 302
    assert ImpactReport.objects.get(ruleset=draft).status == "done"
    page = bob.get(f"{ADMIN}{draft.pk}/change/").content.decode()
    assert "Approve and publish v2" in page and 'id="impact-changed">0</strong> of 0 decisions' in page
    response = bob.post(f"{ADMIN}{draft.pk}/approve/")
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.status, draft.published_by, ruleset_current().pk) == ("published", "bob", draft.pk)


def test_an_edit_after_the_replay_makes_it_stale_and_approval_waits_for_a_new_one(draft, officers, settings):
    settings.EMBEDDED_TASKS = False
    submit(draft, "alice")
    bob = logged_in(officers[1])
    bob.post(f"{ADMIN}{draft.pk}/impact/")
    edit(draft, "carol", min_confidence="0.8")
    submit(draft, "carol")
    page = bob.get(f"{ADMIN}{draft.pk}/change/").content.decode()
    assert "stale: v2 has changed since this replay" in page and "Approve and publish" not in page


ROLES_THAT_MAY_NOT = ["viewer", "operator", "compliance"]


@pytest.mark.parametrize("role", ROLES_THAT_MAY_NOT)
def test_roles_that_may_not_edit_rulesets_are_offered_nothing_and_refused_every_post(draft, role):
    submit(draft, "alice")
    client = logged_in(staff_member(role, "pat"))
    changelist = client.get(ADMIN).content.decode()
    assert client.get(ADMIN).status_code == 200 and 'value="new_draft_from"' not in changelist
    page = client.get(f"{ADMIN}{draft.pk}/change/").content.decode()
    for offered in ('name="_save"', "Submit v2", "Run impact replay", "Approve and publish", "New draft from"):
        assert offered not in page
    before = snapshot()
    for url, data in (
        (ADMIN, {"action": "new_draft_from", "index": "0", "_selected_action": [draft.pk]}),
        (f"{ADMIN}add/", {}),
        (f"{ADMIN}{draft.pk}/change/", form_data(draft, min_confidence="0.9")),
        (f"{ADMIN}{draft.pk}/submit/", {}),
        (f"{ADMIN}{draft.pk}/approve/", {}),
        (f"{ADMIN}{draft.pk}/impact/", {"days": "7"}),
        (f"{ADMIN}{draft.pk}/delete/", {"post": "yes"}),
    ):
        assert client.post(url, data).status_code == 403, url
    assert client.get(f"{ADMIN}add/").status_code == 403
    assert snapshot() == before


def test_a_risk_officer_makes_drafts_from_the_changelist_action(officers):
    alice = logged_in(officers[0])
    assert 'value="new_draft_from"' in alice.get(ADMIN).content.decode()
    alice.post(ADMIN, {"action": "new_draft_from", "index": "0", "_selected_action": [ruleset_current().pk]})
    assert Ruleset.objects.get(version=2).editors == ["alice"]


def test_a_draft_is_submitted_from_its_page_and_can_be_discarded_but_a_published_one_cannot(draft, officers):
    alice = logged_in(officers[0])
    assert alice.post(f"{ADMIN}{draft.pk}/submit/").status_code == 302
    assert Ruleset.objects.get(pk=draft.pk).status == "submitted"
    assert alice.post(f"{ADMIN}{ruleset_current().pk}/delete/", {"post": "yes"}).status_code == 403
    assert alice.post(f"{ADMIN}{draft.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Ruleset.objects.filter(pk=draft.pk).exists()
    assert json.loads(AuditEvent.objects.filter(kind="ruleset.discarded").get().payload) == {"version": 2, "status": "submitted"}
