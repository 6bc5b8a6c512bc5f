from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from governance.models import Agent
from governance.services.agents import agent_create


class Command(BaseCommand):
    help = "Create an agent bound to strategies and print its API token on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--strategy", action="append", required=True, dest="strategies", metavar="SLUG")
        parser.add_argument(
            "--staff", action="store_true",
            help="a staff token: it also reads every strategy's events (the stream's drop copy) and portfolio",
        )

    def handle(self, *args, name, strategies, staff, **options):
        if Agent.objects.filter(name=name).exists():
            raise CommandError(f"agent {name!r} already exists")
        try:
            agent, token = agent_create(name=name, strategy_slugs=strategies, actor="cli", staff=staff)
        except IntegrityError as exc:
            raise CommandError(f"could not create agent {name!r}: {exc}")
        self.stdout.write(f"agent {agent.name} bound to {', '.join(sorted(strategies))}")
        self.stdout.write(token)
