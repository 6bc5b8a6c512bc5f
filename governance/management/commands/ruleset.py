"""Ruleset drafts, four-eyes approval, diff and impact replay (CONTRACT.md §2b).

    ruleset draft --from VERSION --user U
    ruleset set VERSION PARAM VALUE --user U
    ruleset submit VERSION --user U
    ruleset approve VERSION --user U
    ruleset diff VERSION
    ruleset impact VERSION [--days N] [--user U]

Writes (draft, set, submit, approve) need --user naming a staff user whose role may do them:
four-eyes needs two identities. `diff` reads only; `impact` may name a user, else it runs as
the shell account. A refusal is exit 1 with one line on stderr: `permission denied: …`,
`four-eyes: …`, the parameter and its allowed range, or what else stood in the way.
"""

import getpass
import json
import sys

from django.core.exceptions import ValidationError

from governance import roles
from governance.management.base import OperatorCommand
from governance.models import ImpactReport, Ruleset
from governance.services import impact, rulesets

WRITES = {
    "draft": (roles.EDIT_RULESET, "create ruleset drafts"),
    "set": (roles.EDIT_RULESET, "edit ruleset drafts"),
    "submit": (roles.EDIT_RULESET, "submit ruleset drafts"),
    "approve": (roles.APPROVE_RULESET, "approve rulesets"),
    "impact": (roles.EDIT_RULESET, "run impact replays"),
}


class Refused(Exception):
    """A refusal other than the role's: its message is the line printed on stderr (from the
    shell, with exit status 1; called in-process, it propagates)."""


class Command(OperatorCommand):
    help = "Ruleset drafts: draft, set, submit, approve (four eyes), diff, impact."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        draft = sub.add_parser("draft", help="copy a version into a new draft")
        draft.add_argument("--from", dest="source", type=int, required=True, metavar="VERSION")
        draft.add_argument("--user", required=True)
        edit = sub.add_parser("set", help="set one parameter of a draft")
        edit.add_argument("version", type=int)
        edit.add_argument("param")
        edit.add_argument("value")
        edit.add_argument("--user", required=True)
        for name, text in (("submit", "draft -> submitted"), ("approve", "submitted -> published (another risk officer)")):
            step = sub.add_parser(name, help=text)
            step.add_argument("version", type=int)
            step.add_argument("--user", required=True)
        diff = sub.add_parser("diff", help="the parameters that differ from the version in force")
        diff.add_argument("version", type=int)
        replay = sub.add_parser("impact", help="replay the stored proposals of the last N days against this version")
        replay.add_argument("version", type=int)
        replay.add_argument("--days", type=int, default=impact.DEFAULT_DAYS)
        replay.add_argument("--user", default=None)

    def run_from_argv(self, argv):
        try:
            super().run_from_argv(argv)  # a refusal by the role: `permission denied: …`, exit 1
        except Refused as refusal:
            self.stderr.write(str(refusal))
            sys.exit(1)

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    # --- helpers ----------------------------------------------------------------------

    def _actor(self, action: str, user: str | None, *, required: bool = True) -> tuple[str, str]:
        """(actor for the audit trail, the user's name for four-eyes), checked against the role
        (roles.PermissionDenied when the role may not)."""
        permission, what = WRITES[action]
        actor = roles.command_actor(user=user, permission=permission, action=what, required=required)
        return actor, user or getpass.getuser()

    @staticmethod
    def _ruleset(version: int) -> Ruleset:
        ruleset = Ruleset.objects.filter(version=version).first()
        if ruleset is None:
            raise Refused(f"ruleset: no version {version}")
        return ruleset

    @staticmethod
    def _invalid(exc: ValidationError) -> Refused:
        messages = exc.message_dict.values() if hasattr(exc, "error_dict") else [exc.messages]
        return Refused("; ".join(m for group in messages for m in group))

    # --- the subcommands ------------------------------------------------------------------

    def do_draft(self, *, source, user, **_):
        actor, name = self._actor("draft", user)
        origin = self._ruleset(source)
        draft = rulesets.ruleset_new_draft(source=origin, actor=actor, user=name)
        self.stdout.write(f"draft v{draft.version} created from v{origin.version} by {name}")
        self.stdout.write(str(draft.version))

    def do_set(self, *, version, param, value, user, **_):
        actor, name = self._actor("set", user)
        ruleset = self._ruleset(version)
        was_submitted = ruleset.status == Ruleset.Status.SUBMITTED
        try:
            changed = rulesets.ruleset_edit(ruleset_id=ruleset.pk, changes={param: value}, actor=actor, user=name)
        except ValidationError as exc:
            raise self._invalid(exc) from exc
        except rulesets.RulesetError as exc:
            raise Refused(f"ruleset: {exc}") from exc
        if not changed:
            self.stdout.write(f"v{version} {param}: unchanged ({value})")
            return
        for path, (old, new) in changed.items():
            self.stdout.write(f"v{version} {path}: {old} -> {new}")
        if was_submitted:
            self.stdout.write(f"v{version} was submitted: back to draft (submit it again)")

    def do_submit(self, *, version, user, **_):
        actor, name = self._actor("submit", user)
        ruleset = self._ruleset(version)
        try:
            rulesets.ruleset_submit(ruleset_id=ruleset.pk, actor=actor, user=name)
        except ValidationError as exc:
            raise self._invalid(exc) from exc
        except rulesets.RulesetError as exc:
            raise Refused(f"ruleset: {exc}") from exc
        self.stdout.write(f"v{version} submitted by {name}")

    def do_approve(self, *, version, user, **_):
        actor, name = self._actor("approve", user)
        ruleset = self._ruleset(version)
        try:
            rulesets.ruleset_approve(ruleset_id=ruleset.pk, actor=actor, user=name)
        except rulesets.FourEyesError as exc:
            raise Refused(f"four-eyes: {exc}") from exc
        except ValidationError as exc:
            raise self._invalid(exc) from exc
        except rulesets.RulesetError as exc:
            raise Refused(f"ruleset: {exc}") from exc
        self.stdout.write(f"v{version} approved by {name}: published, in force from now")

    def do_diff(self, *, version, **_):
        for name, old, new in rulesets.ruleset_diff(ruleset=self._ruleset(version)):
            self.stdout.write(f"{name}: {old} -> {new}")

    def do_impact(self, *, version, days, user, **_):
        actor, _ = self._actor("impact", user, required=False)
        ruleset = self._ruleset(version)
        try:
            report = impact.impact_request(ruleset=ruleset, days=days, actor=actor)
        except ValueError as exc:
            raise Refused(str(exc)) from exc
        report = impact.impact_run(report_id=report.pk)
        if report.status != ImpactReport.Status.DONE:
            raise Refused(f"impact: the replay failed: {report.error}")
        self.stdout.write(json.dumps(report.result))
