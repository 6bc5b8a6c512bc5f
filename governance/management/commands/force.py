"""Force-execute under two keys (CONTRACT.md §2b).

    force request PROPOSAL_ID --reason TEXT --user U   (an operator or a risk officer)
    force approve PROPOSAL_ID --user U2                (a risk officer other than U)
    force refuse PROPOSAL_ID --reason TEXT --user U2   (a risk officer declines it)
    force show PROPOSAL_ID                             (the proposal's force requests)

--user must name a staff user whose role may do it. A refusal is exit 1 with one line on
stderr: `permission denied: …`, `four-eyes: …` (self-approval) or `force: …` (the proposal is
not blocked by the rules, a check no force overrides failed, the request expired, …).
"""

import sys
import uuid

from governance import roles
from governance.management.base import OperatorCommand
from governance.models import ForceRequest
from governance.services import forcing

ACTIONS = {
    "request": (roles.REQUEST_FORCE, "request force-execute"),
    "approve": (roles.APPROVE_FORCE, "approve force-execute"),
    "refuse": (roles.APPROVE_FORCE, "refuse force-execute"),
}


class Refused(Exception):
    """A refusal other than the role's: its message is the line printed on stderr."""


class Command(OperatorCommand):
    help = "Force-execute a blocked proposal under two keys: request, approve (another risk officer), refuse, show."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        request = sub.add_parser("request", help="ask for a blocked proposal to be executed anyway")
        request.add_argument("proposal_id")
        request.add_argument("--reason", required=True)
        request.add_argument("--user", required=True)
        approve = sub.add_parser("approve", help="grant another officer's request (a risk officer)")
        approve.add_argument("proposal_id")
        approve.add_argument("--user", required=True)
        refuse = sub.add_parser("refuse", help="decline a waiting request (a risk officer)")
        refuse.add_argument("proposal_id")
        refuse.add_argument("--reason", required=True)
        refuse.add_argument("--user", required=True)
        show = sub.add_parser("show", help="the proposal's force requests")
        show.add_argument("proposal_id")

    def run_from_argv(self, argv):
        try:
            super().run_from_argv(argv)  # a refusal by the role: `permission denied: …`, exit 1
        except Refused as refusal:
            self.stderr.write(str(refusal))
            sys.exit(1)

    def handle(self, *args, action, proposal_id, **options):
        try:
            proposal_id = uuid.UUID(proposal_id)
        except ValueError:
            raise Refused(f"force: {proposal_id!r} is not a proposal id") from None
        if action == "show":
            return self.do_show(proposal_id)
        permission, what = ACTIONS[action]
        roles.command_actor(user=options["user"], permission=permission, action=what, required=True)
        user = roles.staff_user(options["user"])
        try:
            if action == "request":
                force = forcing.force_request(proposal_id=proposal_id, user=user, reason=options["reason"])
                self.stdout.write(
                    f"force of {proposal_id} requested by {force.requested_by}; "
                    f"another risk officer may approve it until {force.expires_at.isoformat()}"
                )
            elif action == "approve":
                force = forcing.force_approve(proposal_id=proposal_id, user=user)
                self.stdout.write(
                    f"force of {proposal_id} approved by {force.approved_by} (requested by {force.requested_by}), "
                    f"overriding {', '.join(force.overrides)}; the nodes vote on it now"
                )
                self.stdout.write(force.digest)
            else:
                forcing.force_refuse(proposal_id=proposal_id, user=user, reason=options["reason"])
                self.stdout.write(f"force of {proposal_id} refused by {user.get_username()}")
        except forcing.ForceFourEyes as exc:
            raise Refused(f"four-eyes: {exc}") from exc
        except forcing.ForceRefused as exc:
            raise Refused(f"force: {exc}") from exc

    def do_show(self, proposal_id):
        requests = ForceRequest.objects.filter(proposal_id=proposal_id).order_by("requested_at", "id")
        if not requests:
            raise Refused(f"force: no force request for {proposal_id}")
        for f in requests:
            approved = f" approved by {f.approved_by} at {f.approved_at.isoformat()}" if f.approved_at else ""
            self.stdout.write(f"{f.status}: requested by {f.requested_by} at {f.requested_at.isoformat()}{approved}: {f.reason}")
