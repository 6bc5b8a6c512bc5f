import sys

from django.core.management.base import BaseCommand

from governance.roles import PermissionDenied


class OperatorCommand(BaseCommand):
    """A command an operator runs, perhaps as a staff user (`--user`). From the shell, a refusal
    by the user's role ends it with `permission denied: …` on stderr and exit status 1
    (CONTRACT.md §2b); Django would print `CommandError: …`. Called in-process
    (call_command), the PermissionDenied propagates as it is."""

    def run_from_argv(self, argv):
        try:
            super().run_from_argv(argv)
        except PermissionDenied as exc:
            self.stderr.write(f"permission denied: {exc}")
            sys.exit(1)
