import uuid
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from governance.models import Decision
from governance.replay import decision_replay, decisions_replay


def _iso(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not an ISO-8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise CommandError(f"give the time with its UTC offset: {value!r}")
    return parsed


class Command(BaseCommand):
    help = (
        "Recompute a decision from its stored inputs against its stored ruleset version; "
        "'identical' or the differences, field by field. --all replays every decision (optionally in a time range)."
    )

    def add_arguments(self, parser):
        parser.add_argument("proposal_id", nargs="?", help="the proposal whose decision to replay")
        parser.add_argument("--all", action="store_true", help="replay every decision")
        parser.add_argument("--since", type=_iso, help="with --all: decided at or after (ISO-8601 with offset)")
        parser.add_argument("--until", type=_iso, help="with --all: decided before (ISO-8601 with offset)")

    def handle(self, *args, proposal_id, all, since, until, **options):
        if all == bool(proposal_id):
            raise CommandError("give either a PROPOSAL_ID or --all")
        if not all and (since or until):
            raise CommandError("--since and --until go with --all")
        if all:
            return self._all(since=since, until=until)
        try:
            proposal_uuid = uuid.UUID(proposal_id)
        except ValueError:
            raise CommandError(f"not a proposal id: {proposal_id!r}")
        decision = Decision.objects.select_related("ruleset", "proposal").filter(proposal_id=proposal_uuid).first()
        if decision is None:
            raise CommandError(f"no decision for proposal {proposal_id}")
        differences = decision_replay(decision=decision)
        if not differences:
            self.stdout.write("identical")
            return
        self.stdout.write(f"differs: {len(differences)} difference(s)")
        for line in differences:
            self.stdout.write(f"  {line}")
        raise CommandError(f"decision of proposal {proposal_id} does not match its replay")

    def _all(self, *, since, until):
        identical = differing = 0
        for decision, differences in decisions_replay(since=since, until=until):
            if not differences:
                identical += 1
                continue
            differing += 1
            self.stdout.write(f"differs: {decision.proposal_id} (ruleset v{decision.ruleset_version})")
            for line in differences:
                self.stdout.write(f"  {line}")
        self.stdout.write(f"identical: {identical}, differing: {differing}")
        if differing:
            raise CommandError(f"{differing} of {identical + differing} decisions do not match their replay")
