import getpass

from django.core.management.base import BaseCommand

from governance.services.controls import trading_enable, trading_halt


class Command(BaseCommand):
    help = "Enable or halt trading globally (audited)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["enable", "halt"])
        parser.add_argument("--reason", required=True)
        parser.add_argument("--user", default=None, help="the operator; defaults to the OS user")

    def handle(self, *args, action, reason, user, **options):
        actor = user or getpass.getuser()
        switch = trading_enable if action == "enable" else trading_halt
        state = switch(actor=f"operator:{actor}", reason=reason)
        word = "enabled" if state.enabled else "halted"
        self.stdout.write(f"trading {word} by {actor}: {reason}")
