from django.core.management.base import BaseCommand, CommandError

from ledger.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the whole audit hash chain: seq continuity, prev links and every event's hash."

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=5000, help="rows fetched per round trip")
        parser.add_argument(
            "--show-head",
            action="store_true",
            help="also print the last event's hash: record it elsewhere to detect a truncated tail later",
        )

    def handle(self, *args, chunk_size, show_head, **options):
        report = audit_chain_verify(chunk_size=chunk_size)
        if not report.ok:
            raise CommandError(
                f"audit chain broken at seq {report.broken_seq} (kind {report.broken_kind}): {report.reason}; "
                f"{report.count} events before it verify"
            )
        self.stdout.write(f"audit chain OK: {report.count} events")
        if show_head:
            self.stdout.write(f"head {report.head_hash}")
