from django.conf import settings
from django.core.management.base import BaseCommand

from ledger.services import audit_sequencer_run


class Command(BaseCommand):
    help = (
        "Run the audit sequencer until stopped: link committed events into the hash chain within "
        "CHRONOSX_AUDIT_SEQUENCER_POLL_SECONDS of their commit (beat's round every second stays as the fallback)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--poll-seconds", type=float, default=settings.CHRONOSX_AUDIT_SEQUENCER_POLL_SECONDS)

    def handle(self, *args, poll_seconds, **options):
        self.stderr.write(f"audit sequencer: polling every {poll_seconds * 1000:g} ms")
        audit_sequencer_run(poll_seconds=poll_seconds)
