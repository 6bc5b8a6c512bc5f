"""Compliance exports (CONTRACT.md §2b):

    export KIND --from DATE --to DATE [--strategy SLUG] --format csv|xlsx|pdf --out FILE --user U

KIND: proposals, votes, orders, fills, audit (CSV or XLSX), report (PDF). Prints `rows: N`, or
`pages: N` for the report. --user must name a staff user whose role may export (compliance):
otherwise exit 1 with `permission denied: …`. A bad date, kind, format or strategy: exit 1
with the reason on stderr. One audit event per export.
"""

from django.core.management.base import CommandError

from compliance.services.exports import DATE_HELP, KINDS, ExportError, export_check, export_period, export_run
from governance.management.base import OperatorCommand
from governance.roles import EXPORT_REPORTS, command_actor


class Command(OperatorCommand):
    help = "Export proposals, votes, orders, fills or the audit trail (CSV/XLSX), or the compliance report (PDF)."

    def add_arguments(self, parser):
        parser.add_argument("kind", metavar="KIND", help=f"one of {', '.join(KINDS)}")
        parser.add_argument("--from", dest="start", required=True, metavar="DATE", help=DATE_HELP)
        parser.add_argument("--to", dest="end", required=True, metavar="DATE", help=DATE_HELP)
        parser.add_argument("--strategy", metavar="SLUG", help="only this strategy's records")
        parser.add_argument("--format", dest="fmt", required=True, metavar="csv|xlsx|pdf")
        parser.add_argument("--out", required=True, metavar="FILE", help="the file to write (replaced when complete)")
        parser.add_argument("--user", metavar="NAME", help="the staff user exporting (required: compliance role)")

    def handle(self, *args, kind, start, end, strategy, fmt, out, user, **options):
        actor = command_actor(user=user, permission=EXPORT_REPORTS, action="export reports", required=True)
        try:
            export_check(kind=kind, fmt=fmt, strategy=strategy)
            period = export_period(start=start, end=end)
            result = export_run(kind=kind, fmt=fmt, period=period, strategy=strategy, out=out, actor=actor)
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
        self.stdout.write(f"{result.unit}: {result.count}")
