import getpass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance.access import two_factor_required, totp_device
from governance.roles import ROLES
from governance.services.staff import NotStaff, UnknownRole, staff_add, staff_totp_reset


class Command(BaseCommand):
    help = "Staff users: add one with a role (or move one to another role); set up a two-factor device."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="create the staff user, or move it to ROLE; prints NAME")
        add.add_argument("name")
        # Not argparse choices: an unknown role exits 1 (CONTRACT.md §2b), argparse would exit 2.
        add.add_argument("--role", required=True, help=f"one of: {', '.join(ROLES)}")
        add.add_argument(
            "--password-file",
            help="the password is this file's content (one trailing newline dropped); without it a "
            "new user's password is unusable until set, and an existing user's stays as it is",
        )
        totp = sub.add_parser(
            "totp", help="give the user a new TOTP device (any old one stops working); prints its otpauth:// URI, once"
        )
        totp.add_argument("name")

    def handle(self, *args, action, **options):
        # Shell access to manage.py already holds the database: the shell account acts.
        actor = f"operator:{getpass.getuser()}"
        name = options["name"]
        if action == "totp":
            try:
                device = staff_totp_reset(name=name, actor=actor)
            except NotStaff as exc:
                raise CommandError(f"{exc}: add them first (staff add {name} --role ROLE)") from exc
            self.stdout.write(device.config_url)
            return
        password = None
        if options["password_file"]:
            try:
                password = Path(options["password_file"]).read_text().removesuffix("\n").removesuffix("\r")
            except OSError as exc:
                raise CommandError(f"cannot read the password file: {exc}") from exc
            if not password:
                raise CommandError(f"the password file {options['password_file']} is empty")
        try:
            user = staff_add(name=name, role=options["role"], password=password, actor=actor)
        except UnknownRole as exc:
            raise CommandError(str(exc)) from exc
        if two_factor_required(user) and totp_device(user) is None:
            self.stderr.write(f"{name} must sign in with two-factor: set up a device with `manage.py staff totp {name}`")
        self.stdout.write(user.get_username())
