"""Force-execute under two keys: an operator asks for a blocked proposal to be executed with a
reason, a different risk officer approves within ten minutes, and the three nodes verify the
force record and sign over it, or refuse. Never past the controls or a hard cap."""

import base64
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command, get_commands, load_command_class
from django.db import connections
from django.utils import timezone

from chronosx import pipeline
from governance import digests, keys, nodes
from governance.management.commands.force import Refused
from governance.models import Decision, ForceRequest, Instrument, Proposal, Ruleset, Vote
from governance.parameters import BY_NAME
from governance.roles import PermissionDenied
from governance.selectors.quorum import quorum_certificate_verify
from governance.services import forcing
from governance.services.controls import breaker_trip, trading_enable, trading_halt
from governance.services.rulesets import ruleset_edit, ruleset_new_draft, ruleset_publish
from governance.services.sweep import proposals_sweep
from ledger.models import AuditEvent
from tests.builders import post_proposal, proposal_body, staff_member

APPROVED = {"approved", "routed", "partially_filled", "filled"}


@pytest.fixture
def officers(seeded):
    """An operator who asks, and two risk officers."""
    return staff_member("operator", "olga"), staff_member("risk_officer", "rita"), staff_member("risk_officer", "rob")


@pytest.fixture
def blocked(api, trading_enabled, officers):
    """Post a proposal that the rules block (by default: confidence below the minimum, which a force may override)."""

    def post(**overrides):
        body = proposal_body(**{"confidence": 0.1, **overrides})
        response = post_proposal(api, body)
        assert response.status_code == 202, response.content
        proposal = response.json()
        assert proposal["status"] == "blocked", proposal["decision"]
        return proposal["id"]

    return post


def fetch(api, proposal_id):
    return api.get(f"/api/v1/proposals/{proposal_id}/").json()


def force(*args):
    out = io.StringIO()
    call_command("force", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_cli(argv, capsys, monkeypatch):
    """As `manage.py force …` runs it: (exit status, stdout, stderr)."""
    monkeypatch.setattr(connections, "close_all", lambda: None)
    command = load_command_class(get_commands()[argv[0]], argv[0])
    try:
        command.run_from_argv(["manage.py", *argv])
        status = 0
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def state(proposal_id):
    """What a refusal must leave unchanged: the proposal, its requests, its votes and the audit trail."""
    return (
        Proposal.objects.get(id=proposal_id).status,
        list(ForceRequest.objects.filter(proposal_id=proposal_id).values_list("status", "approved_by")),
        Vote.objects.filter(proposal_id=proposal_id).count(),
        AuditEvent.objects.count(),
    )


# --- the whole way: approved, voted over the force record, filled --------------------------


def test_a_forced_proposal_is_approved_by_three_signatures_over_its_force_record_and_filled(api, blocked):
    proposal_id = blocked()
    assert fetch(api, proposal_id)["forced"] is False and fetch(api, proposal_id)["force"] is None

    out = force("request", proposal_id, "--reason", "desk confirmed the signal by phone", "--user", "olga")
    assert f"force of {proposal_id} requested by olga" in out
    assert fetch(api, proposal_id)["status"] == "blocked"  # nothing happens on a request alone
    out = force("approve", proposal_id, "--user", "rita")
    record = ForceRequest.objects.get(proposal_id=proposal_id)
    assert out.splitlines()[-1] == record.digest
    assert record.status == "approved" and record.overrides == ["min_confidence"]

    body = fetch(api, proposal_id)
    assert body["status"] == "filled", body
    assert body["forced"] is True
    assert body["force"] == {
        "requested_by": "olga",
        "approved_by": "rita",
        "reason": "desk confirmed the signal by phone",
        "approved_at": body["force"]["approved_at"],
    }
    assert body["force"]["approved_at"].startswith(record.approved_at.isoformat()[:19])
    assert body["decision"]["outcome"] == "block"  # the decision stands as the rules made it
    assert body["orders"][0]["quantity"] == "0.0010" and Decimal(body["orders"][0]["filled_quantity"]) == Decimal("0.001")

    # Three approvals, each signing the decision and the force record's digest.
    quorum = body["quorum"]
    assert quorum["met"] and quorum["approvals"] == 3
    assert {v["node"] for v in quorum["votes"]} == {"risk", "portfolio", "execution"}
    assert all(v["verified"] and v["force_digest"] == record.digest for v in quorum["votes"])
    listed = api.get("/api/v1/proposals/?strategy=demo").json()
    assert [(p["forced"], p["force"]["approved_by"]) for p in listed if p["id"] == proposal_id] == [(True, "rita")]
    assert record.digest == digests.force_row_digest(record)
    for vote in Vote.objects.filter(proposal_id=proposal_id):
        assert vote.verdict == "approve" and vote.force_digest == record.digest
        assert "force-execute requested by olga, approved by rita, overrides min_confidence" in vote.reason
        _, public_key = keys.public_key_lookup(vote.key_id)
        signed = digests.vote_message(
            proposal_id=proposal_id, decision_digest=vote.decision_digest, node=vote.node, verdict=vote.verdict,
            key_id=vote.key_id, force_digest=record.digest,
        )
        assert keys.signature_valid(public_key=public_key, message=signed, signature=vote.signature)
        # The signature covers the record: without it, or over another record, it does not verify.
        for other in ("", "0" * 64):
            message = digests.vote_message(
                proposal_id=proposal_id, decision_digest=vote.decision_digest, node=vote.node, verdict=vote.verdict,
                key_id=vote.key_id, force_digest=other,
            )
            assert not keys.signature_valid(public_key=public_key, message=message, signature=vote.signature)

    kinds = list(AuditEvent.objects.filter(proposal_id=proposal_id).order_by("id").values_list("kind", "actor"))
    assert ("force.requested", "operator:olga") in kinds and ("force.approved", "operator:rita") in kinds
    assert kinds.index(("force.requested", "operator:olga")) < kinds.index(("force.approved", "operator:rita"))


def test_replaying_a_forced_proposals_decision_is_still_identical(api, blocked):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    force("approve", proposal_id, "--user", "rita")
    assert fetch(api, proposal_id)["status"] == "filled"
    out = io.StringIO()
    call_command("replay_decision", proposal_id, stdout=out)
    assert out.getvalue().strip() == "identical"


def test_a_node_refuses_a_force_record_changed_after_its_approval(api, blocked, monkeypatch):
    """Each node verifies the record before it signs: a record edited after approval (here, the
    approver's name) is rejected by every node, and no certificate is issued over it."""
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    # Edit the record in the same transaction as the approval, before the nodes are asked.
    approve = forcing.quorum_open

    def tamper(**kwargs):
        ForceRequest.objects.filter(proposal_id=proposal_id).update(approved_by="olga-again")
        approve(**kwargs)

    monkeypatch.setattr(forcing, "quorum_open", tamper)
    force("approve", proposal_id, "--user", "rita")
    body = fetch(api, proposal_id)
    assert body["status"] == "blocked" and body["orders"] == []
    votes = Vote.objects.filter(proposal_id=proposal_id)
    assert votes.count() == 3 and all(v.verdict == "reject" for v in votes)
    assert all("force record does not verify: force record digest does not match" in v.reason for v in votes)
    assert quorum_certificate_verify(proposal_id=proposal_id)[0] is False


def test_a_halt_after_the_approval_makes_every_node_refuse_and_nothing_is_sent(api, blocked, monkeypatch):
    proposal_id = blocked()
    held = []
    enqueue = pipeline.enqueue

    def hold_votes(stage, *args, queue=None):
        if stage == pipeline.VOTE:
            held.append(args)
            return
        enqueue(stage, *args, queue=queue)

    monkeypatch.setattr(pipeline, "enqueue", hold_votes)
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    force("approve", proposal_id, "--user", "rita")
    assert len(held) == 3 and fetch(api, proposal_id)["status"] == "pending"
    trading_halt(actor="test", reason="venue incident")
    votes = [nodes.node_vote(proposal_id=p, node=n) for p, n in held]
    assert all(v.verdict == "reject" for v in votes)
    assert all("trading is halted: venue incident" in v.reason or "trading is not enabled" in v.reason for v in votes)
    body = fetch(api, proposal_id)
    assert body["status"] == "blocked" and body["orders"] == [] and body["quorum"]["approvals"] == 0


# --- refusals --------------------------------------------------------------------------------


def test_self_approval_is_refused_with_exit_1_and_changes_nothing(api, blocked, capsys, monkeypatch):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "rita")
    before = state(proposal_id)
    status, out, err = run_cli(["force", "approve", proposal_id, "--user", "rita"], capsys, monkeypatch)
    assert status == 1 and out == ""
    assert err.splitlines() == ["four-eyes: rita requested this force; another risk officer must approve it"]
    assert state(proposal_id) == before
    # Another risk officer may.
    status, out, err = run_cli(["force", "approve", proposal_id, "--user", "rob"], capsys, monkeypatch)
    assert status == 0 and err == ""
    assert fetch(api, proposal_id)["status"] == "filled"


def test_a_superuser_cannot_approve_their_own_request_either(api, blocked, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", None)
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "root")
    with pytest.raises(Refused, match="^four-eyes: root requested this force"):
        force("approve", proposal_id, "--user", "root")


def test_a_hard_cap_is_never_overridden(blocked, capsys, monkeypatch):
    """1 BTC at 65,000 is over the demo's max_order_notional; with the low confidence it is a
    block (not a modify), and max_order_notional is hard by default."""
    proposal_id = blocked(quantity="1.0000")
    decision = Decision.objects.get(proposal_id=proposal_id)
    assert {c["rule"] for c in decision.checks if not c["passed"]} >= {"min_confidence", "max_order_notional"}
    before = state(proposal_id)
    status, out, err = run_cli(["force", "request", proposal_id, "--reason", "big one", "--user", "olga"], capsys, monkeypatch)
    assert status == 1 and out == ""
    assert err.startswith("force: a force never overrides max_order_notional: order notional 65000")
    assert state(proposal_id) == before


def test_a_cap_the_ruleset_does_not_mark_hard_may_be_overridden_and_the_nodes_allow_it(api, blocked):
    """strategy_budget is not hard by default: a forced order over the strategy's budget goes through."""
    draft = ruleset_new_draft(source=Ruleset.objects.get(status="published"), actor="test")
    ruleset_edit(ruleset_id=draft.pk, changes={"strategy_budgets.demo": "1"}, actor="test", user="test")
    ruleset_publish(ruleset=draft, actor="test")
    proposal_id = blocked(confidence=0.95)  # only the budget fails, and it has no smaller passing size
    failed = [c["rule"] for c in Decision.objects.get(proposal_id=proposal_id).checks if not c["passed"]]
    assert failed == ["strategy_budget"]
    force("request", proposal_id, "--reason", "budget review pending", "--user", "olga")
    force("approve", proposal_id, "--user", "rita")
    body = fetch(api, proposal_id)
    assert body["status"] == "filled" and body["forced"] is True and body["quorum"]["approvals"] == 3


def test_force_is_refused_while_trading_is_halted(api, blocked):
    proposal_id = blocked()
    trading_halt(actor="test", reason="desk closed")
    before = state(proposal_id)
    with pytest.raises(Refused, match=r"^force: a force never overrides trading_enabled \(now\): trading is halted: desk closed"):
        force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    assert state(proposal_id) == before


def test_a_halt_between_request_and_approval_refuses_the_approval(api, blocked):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    trading_halt(actor="test", reason="venue incident")
    before = state(proposal_id)
    with pytest.raises(Refused, match=r"^force: a force never overrides trading_enabled \(now\): trading is halted"):
        force("approve", proposal_id, "--user", "rita")
    assert state(proposal_id) == before


def test_a_proposal_blocked_because_trading_was_halted_cannot_be_forced(api, seeded, officers):
    """Trading is halted by default: the block names trading_enabled, which no force overrides,
    even once trading is enabled again (covers reduce-only too: it fails the same check)."""
    response = post_proposal(api, proposal_body())
    proposal_id = response.json()["id"]
    assert response.json()["status"] == "blocked"
    trading_enable(actor="test", reason="open")
    with pytest.raises(Refused, match="^force: a force never overrides trading_enabled: trading is halted"):
        force("request", proposal_id, "--reason", "desk call", "--user", "olga")


def test_force_is_refused_while_a_breaker_is_tripped(api, blocked):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    breaker_trip(name="manual_kill", actor="operator:ops", reason="desk halted everything")
    before = state(proposal_id)
    with pytest.raises(Refused, match=r"^force: a force never overrides circuit_breaker \(now\): tripped: manual_kill"):
        force("approve", proposal_id, "--user", "rita")
    assert state(proposal_id) == before


def test_a_close_blocked_by_alpha_exits_cannot_be_forced(api, blocked):
    proposal_id = blocked(intent="close", side="sell", confidence=0.95)
    with pytest.raises(Refused, match="^force: a force never overrides exits_enabled: exits are disabled in ALPHA mode"):
        force("request", proposal_id, "--reason", "take profit", "--user", "olga")


def test_a_disabled_instrument_cannot_be_forced(api, blocked):
    proposal_id = blocked()
    Instrument.objects.filter(symbol="BTCUSDT").update(enabled=False)
    with pytest.raises(Refused, match=r"^force: a force never overrides instrument_enabled \(now\): BTCUSDT is disabled"):
        force("request", proposal_id, "--reason", "desk call", "--user", "olga")


def test_only_a_blocked_proposal_can_be_forced_and_only_once(api, trading_enabled, blocked):
    passing = post_proposal(api, proposal_body()).json()["id"]
    with pytest.raises(Refused, match=f"^force: proposal {passing} is filled: only a proposal the rules blocked can be forced"):
        force("request", passing, "--reason", "why not", "--user", "olga")
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    with pytest.raises(Refused, match="already has a force request open"):
        force("request", proposal_id, "--reason", "again", "--user", "rita")
    with pytest.raises(Refused, match="is not a proposal id"):
        force("request", "nope", "--reason", "x", "--user", "olga")


def test_a_request_needs_a_reason(blocked):
    proposal_id = blocked()
    with pytest.raises(Refused, match="^force: a reason is required"):
        force("request", proposal_id, "--reason", "  ", "--user", "olga")


def test_a_risk_officer_may_refuse_a_request(api, blocked):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    assert "refused by rita" in force("refuse", proposal_id, "--reason", "signal too weak", "--user", "rita")
    assert ForceRequest.objects.get(proposal_id=proposal_id).status == "refused"
    assert force("show", proposal_id).startswith("refused: requested by olga at ")
    with pytest.raises(Refused, match="no force request waiting for approval"):
        force("approve", proposal_id, "--user", "rob")
    assert fetch(api, proposal_id)["status"] == "blocked"


# --- expiry ------------------------------------------------------------------------------------


def test_an_unapproved_request_expires_after_ten_minutes_by_the_sweeper(api, blocked):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    request = ForceRequest.objects.get(proposal_id=proposal_id)
    assert request.expires_at - request.requested_at == timedelta(minutes=10)
    assert proposals_sweep(now=request.requested_at + timedelta(minutes=10) - timedelta(microseconds=1))["force_requests_expired"] == 0
    assert ForceRequest.objects.get(id=request.id).status == "requested"
    assert proposals_sweep(now=request.requested_at + timedelta(minutes=10))["force_requests_expired"] == 1
    request.refresh_from_db()
    assert request.status == "expired" and request.closed_by == "sweeper"
    assert AuditEvent.objects.filter(proposal_id=proposal_id, kind="force.expired").count() == 1
    with pytest.raises(Refused, match="no force request waiting for approval \\(it expired\\)"):
        force("approve", proposal_id, "--user", "rita")
    assert fetch(api, proposal_id)["status"] == "blocked" and fetch(api, proposal_id)["forced"] is False
    # A new request may be made after one expired.
    force("request", proposal_id, "--reason", "desk call, again", "--user", "olga")


def test_a_proposal_can_be_forced_only_within_ten_minutes_of_its_block(blocked, officers):
    proposal_id = blocked()
    decided_at = Decision.objects.get(proposal_id=proposal_id).decided_at
    with pytest.raises(forcing.ForceRefused, match="a force may be requested only within 10 minutes of the decision"):
        forcing.force_request(
            proposal_id=proposal_id, user=officers[0], reason="late", now=decided_at + timedelta(minutes=10, microseconds=1)
        )
    assert not ForceRequest.objects.filter(proposal_id=proposal_id).exists()
    forcing.force_request(proposal_id=proposal_id, user=officers[0], reason="in time", now=decided_at + timedelta(minutes=10))


def test_an_approval_after_the_ten_minutes_is_refused_and_expires_the_request(api, blocked, officers):
    proposal_id = blocked()
    _, rita, _ = officers
    request = forcing.force_request(proposal_id=proposal_id, user=officers[0], reason="desk call")
    with pytest.raises(forcing.ForceRefused, match="it expired"):
        forcing.force_approve(proposal_id=proposal_id, user=rita, now=request.requested_at + timedelta(minutes=10))
    assert ForceRequest.objects.get(id=request.id).status == "expired"
    assert Proposal.objects.get(id=proposal_id).status == "blocked"


def test_an_approval_just_inside_the_ten_minutes_is_granted(api, blocked, officers):
    proposal_id = blocked()
    request = forcing.force_request(proposal_id=proposal_id, user=officers[0], reason="desk call", now=timezone.now() - timedelta(minutes=9, seconds=59))
    forcing.force_approve(proposal_id=proposal_id, user=officers[1])
    assert ForceRequest.objects.get(id=request.id).status == "approved"
    assert fetch(api, proposal_id)["status"] in APPROVED


# --- roles × action -------------------------------------------------------------------------

ROLES = ["viewer", "operator", "risk_officer", "compliance"]
MAY_REQUEST = {"operator", "risk_officer"}
MAY_APPROVE = {"risk_officer"}


@pytest.mark.parametrize("role", ROLES)
def test_force_request_command_runs_with_the_users_role(blocked, role, capsys, monkeypatch):
    staff_member(role, "pat")
    proposal_id = blocked()
    before = state(proposal_id)
    status, out, err = run_cli(["force", "request", proposal_id, "--reason", "desk call", "--user", "pat"], capsys, monkeypatch)
    if role not in MAY_REQUEST:
        assert status == 1 and out == ""
        assert err.splitlines() == [f"permission denied: pat ({role}) may not request force-execute"]
        assert state(proposal_id) == before
        return
    assert status == 0 and err == ""
    assert ForceRequest.objects.get(proposal_id=proposal_id).requested_by == "pat"


@pytest.mark.parametrize("role", ROLES)
def test_force_approve_command_runs_with_the_users_role(api, blocked, role, capsys, monkeypatch):
    staff_member(role, "pat")
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    before = state(proposal_id)
    status, out, err = run_cli(["force", "approve", proposal_id, "--user", "pat"], capsys, monkeypatch)
    if role not in MAY_APPROVE:
        assert status == 1 and out == ""
        assert err.splitlines() == [f"permission denied: pat ({role}) may not approve force-execute"]
        assert state(proposal_id) == before
        return
    assert status == 0 and err == ""
    assert fetch(api, proposal_id)["status"] == "filled"


@pytest.mark.parametrize("role", ROLES)
def test_force_refuse_command_runs_with_the_users_role(blocked, role, capsys, monkeypatch):
    staff_member(role, "pat")
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    before = state(proposal_id)
    status, out, err = run_cli(["force", "refuse", proposal_id, "--reason", "no", "--user", "pat"], capsys, monkeypatch)
    if role not in MAY_APPROVE:
        assert status == 1 and out == ""
        assert err.splitlines() == [f"permission denied: pat ({role}) may not refuse force-execute"]
        assert state(proposal_id) == before
        return
    assert status == 0 and err == ""
    assert ForceRequest.objects.get(proposal_id=proposal_id).status == "refused"


def test_the_force_command_requires_a_staff_user(blocked):
    proposal_id = blocked()
    with pytest.raises(PermissionDenied, match="night-shift is not a staff user"):
        force("request", proposal_id, "--reason", "desk call", "--user", "night-shift")


def offered_actions(client):
    page = client.get("/admin/governance/proposal/").content.decode()
    return {value for value in ("request_force", "approve_force") if f'<option value="{value}"' in page}


@pytest.mark.parametrize("role", [*ROLES, "superuser"])
def test_force_actions_are_offered_in_admin_only_to_roles_that_may_take_them(login_as, blocked, role):
    blocked()
    client = login_as(role)
    expected = {"request_force"} if role in MAY_REQUEST else set()
    expected |= {"approve_force"} if role in MAY_APPROVE | {"superuser"} else set()
    if role == "superuser":
        expected.add("request_force")
    assert offered_actions(client) == expected


@pytest.mark.parametrize("role", ROLES)
def test_requesting_force_in_admin_takes_a_reason_and_records_the_user_or_is_refused(login_as, blocked, role):
    proposal_id = blocked()
    client = login_as(role, "pat")
    before = state(proposal_id)
    post = {"action": "request_force", "index": "0", "_selected_action": [proposal_id]}
    ask = client.post("/admin/governance/proposal/", post)
    if role not in MAY_REQUEST:
        assert ask.status_code == 403
        assert client.post("/admin/governance/proposal/", {**post, "confirm": "yes", "reason": "forged"}).status_code == 403
        assert state(proposal_id) == before
        return
    assert ask.status_code == 200 and b"Request force-execute" in ask.content and b"min_confidence" in ask.content
    assert state(proposal_id) == before  # the question changes nothing
    done = client.post("/admin/governance/proposal/", {**post, "confirm": "yes", "reason": "desk call"})
    assert done.status_code == 302
    request = ForceRequest.objects.get(proposal_id=proposal_id)
    assert (request.status, request.requested_by, request.reason) == ("requested", "pat", "desk call")
    assert AuditEvent.objects.get(proposal_id=proposal_id, kind="force.requested").actor == "admin:pat"


@pytest.mark.parametrize("role", ROLES)
def test_approving_force_in_admin_is_allowed_to_another_risk_officer_only(login_as, api, blocked, role):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "olga")
    client = login_as(role, "pat")
    before = state(proposal_id)
    response = client.post("/admin/governance/proposal/", {"action": "approve_force", "index": "0", "_selected_action": [proposal_id]})
    if role not in MAY_APPROVE:
        assert response.status_code == 403
        assert state(proposal_id) == before
        return
    assert response.status_code == 302
    assert fetch(api, proposal_id)["status"] == "filled"
    page = client.get(f"/admin/governance/proposal/{proposal_id}/change/").content.decode()
    assert "force-execute request" in page.lower() and "olga" in page and "pat" in page


def test_self_approval_in_admin_answers_403_and_changes_nothing(client, blocked):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk call", "--user", "rita")
    client.force_login(get_user_model().objects.get(username="rita"))
    before = state(proposal_id)
    response = client.post("/admin/governance/proposal/", {"action": "approve_force", "index": "0", "_selected_action": [proposal_id]})
    assert response.status_code == 403 and response.content.decode().startswith("four-eyes: rita requested the force")
    assert state(proposal_id) == before


def test_the_dashboard_trace_shows_the_force_record(login_as, api, blocked):
    proposal_id = blocked()
    force("request", proposal_id, "--reason", "desk confirmed by phone", "--user", "olga")
    force("approve", proposal_id, "--user", "rita")
    client = login_as("viewer")
    page = client.get(f"/dashboard/partials/proposals/?selected={proposal_id}").content.decode()
    assert "forced" in page and "desk confirmed by phone" in page and "olga" in page and "rita" in page


# --- the ruleset parameter --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, stored",
    [
        ("", ""),
        ("max_order_notional", "max_order_notional"),
        ("portfolio_exposure,max_order_notional", "max_order_notional,portfolio_exposure"),
    ],
)
def test_force_hard_rules_takes_rule_names_in_table_order(value, stored):
    assert BY_NAME["force_hard_rules"].parse(value) == stored


@pytest.mark.parametrize("value", ["trading_enabled", "max_order_notional,max_order_notional", "nope", "max_order_notional,", " max_position"])
def test_force_hard_rules_refuses_anything_else_naming_the_parameter(value):
    with pytest.raises(ValidationError) as refused:
        BY_NAME["force_hard_rules"].parse(value)
    assert refused.value.messages == [
        "force_hard_rules: must be comma-separated names, each at most once, of min_confidence, signal_age, slippage, "
        "price_collar, max_order_notional, max_position, asset_exposure, strategy_budget, portfolio_exposure, "
        f"max_open_positions, order_rate, daily_loss, drawdown, loss_cooldown; or nothing; got {value!r}"
    ]
