from django.core.management.base import CommandError

from governance.management.base import OperatorCommand
from governance.models import CircuitBreaker
from governance.roles import RESET_BREAKER, TRIP_BREAKER, command_actor
from governance.services.controls import breaker_reset, breaker_trip

ACTIONS = {"trip": (TRIP_BREAKER, breaker_trip), "reset": (RESET_BREAKER, breaker_reset)}


class Command(OperatorCommand):
    help = "List circuit breakers, or trip / reset one by name (audited). Routing stops while any is tripped."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="every breaker: name, state, since, reason, who changed it last")
        for action in ("reset", "trip"):
            p = sub.add_parser(action, help=f"{action} one breaker")
            p.add_argument("name")
            p.add_argument("--reason", required=True)
            p.add_argument(
                "--user",
                default=None,
                help="who acts: a staff user acts with their role's rights; anyone else (or, by default, "
                "the OS user) with full rights",
            )

    def handle(self, *args, action, **options):
        if action == "list":
            for breaker in CircuitBreaker.objects.order_by("name"):
                state = "TRIPPED" if breaker.tripped else "ok"
                since = breaker.since.isoformat() if breaker.since else "-"
                self.stdout.write(f"{breaker.name}\t{state}\t{since}\t{breaker.reason}\t{breaker.changed_by or '-'}")
            return
        name, reason = options["name"], options["reason"].strip()
        permission, change = ACTIONS[action]
        actor = command_actor(user=options["user"], permission=permission, action=f"{action} circuit breaker {name}", required=False)
        if not reason:
            raise CommandError("--reason must say why")
        tripped = CircuitBreaker.objects.filter(name=name).values_list("tripped", flat=True).first()
        if action == "reset" and tripped is None:
            raise CommandError(f"no circuit breaker named {name!r}")
        breaker = change(name=name, actor=actor, reason=reason)
        done = "tripped" if breaker.tripped else "reset"
        if tripped == breaker.tripped:  # nothing to do: say who put it in this state, and why
            self.stdout.write(f"{breaker.name}: already {done} (by {breaker.changed_by or '-'}: {breaker.reason or '-'})")
        else:
            self.stdout.write(f"{breaker.name}: {done} by {actor}: {reason}")
