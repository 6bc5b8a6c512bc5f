from django.core.management.base import CommandError

from governance.management.base import OperatorCommand
from governance.models import CircuitBreaker
from governance.roles import APPROVE_RULESET, RESET_BREAKER, TRIP_BREAKER, command_actor
from governance.selectors.controls import LOSS_BREAKERS
from governance.services.controls import (
    breaker_reset,
    breaker_trip,
    loss_breaker_reset_approve,
    loss_breaker_reset_request,
)

ACTIONS = {"trip": (TRIP_BREAKER, breaker_trip), "reset": (RESET_BREAKER, breaker_reset)}


class Command(OperatorCommand):
    help = (
        "List circuit breakers, or trip / reset one by name (audited). Routing stops while any is tripped, "
        "except the loss-limit breakers (daily_loss_limit, drawdown_limit), which make trading reduce-only: "
        "`reset` of one of those is a request, which a different risk officer grants with `approve-reset`."
    )

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
        p = sub.add_parser("approve-reset", help="grant a requested reset of a loss-limit breaker (a different risk officer)")
        p.add_argument("name", choices=LOSS_BREAKERS)
        p.add_argument("--user", required=True, help="a risk officer other than who asked for the reset")

    def handle(self, *args, action, **options):
        if action == "list":
            for breaker in CircuitBreaker.objects.order_by("name"):
                state = "TRIPPED" if breaker.tripped else "ok"
                since = breaker.since.isoformat() if breaker.since else "-"
                self.stdout.write(f"{breaker.name}\t{state}\t{since}\t{breaker.reason}\t{breaker.changed_by or '-'}")
            return
        if action == "approve-reset":
            name = options["name"]
            actor = command_actor(user=options["user"], permission=APPROVE_RULESET, action=f"approve the reset of {name}", required=True)
            try:
                breaker = loss_breaker_reset_approve(name=name, user=actor.removeprefix("operator:"))
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{breaker.name}: reset by {actor}: {breaker.reason} (trading stays as it is; enable it when ready)")
            return
        name, reason = options["name"], options["reason"].strip()
        if action == "reset" and name in LOSS_BREAKERS:
            actor = command_actor(user=options["user"], permission=RESET_BREAKER, action=f"reset circuit breaker {name}", required=True)
            if not reason:
                raise CommandError("--reason must say why")
            if not CircuitBreaker.objects.filter(name=name, tripped=True).exists():
                self.stdout.write(f"{name}: already reset")
                return
            try:
                loss_breaker_reset_request(name=name, user=actor.removeprefix("operator:"), reason=reason)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{name}: reset requested by {actor}; a different risk officer approves: breaker approve-reset {name} --user U")
            return
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
