import getpass

from django.core.management.base import BaseCommand, CommandError

from governance.models import CircuitBreaker
from governance.services.controls import breaker_reset, breaker_trip


class Command(BaseCommand):
    help = "List circuit breakers, or trip / reset one by name (audited). Routing stops while any is tripped."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="every breaker and its state")
        for action in ("reset", "trip"):
            p = sub.add_parser(action, help=f"{action} one breaker")
            p.add_argument("name")
            p.add_argument("--reason", required=True)
            p.add_argument("--user", default=None, help="the operator; defaults to the OS user")

    def handle(self, *args, action, **options):
        if action == "list":
            for breaker in CircuitBreaker.objects.order_by("name"):
                state = "TRIPPED" if breaker.tripped else "ok"
                since = breaker.since.isoformat() if breaker.since else "-"
                self.stdout.write(f"{breaker.name}\t{state}\t{since}\t{breaker.reason}")
            return
        actor = f"operator:{options['user'] or getpass.getuser()}"
        name, reason = options["name"], options["reason"]
        if action == "reset":
            if not CircuitBreaker.objects.filter(name=name).exists():
                raise CommandError(f"no circuit breaker named {name!r}")
            breaker = breaker_reset(name=name, actor=actor, reason=reason)
        else:
            breaker = breaker_trip(name=name, actor=actor, reason=reason)
        self.stdout.write(f"{breaker.name}: {'tripped' if breaker.tripped else 'reset'} by {actor}: {reason}")
