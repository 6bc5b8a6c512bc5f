"""Operator roles: Django groups with exactly the permissions each needs (CONTRACT.md §2b).

    viewer        reads everything, changes nothing
    operator      trading state, breakers, kill switch, force-execute requests
    risk_officer  everything an operator does, plus ruleset drafts, submissions and
                  approvals, and force-execute approvals
    compliance    reads everything, exports, verifies the audit chain; changes nothing

Every staff user holds one role. The admin, the dashboard and the management commands
ask the same question, `user_may(user, PERMISSION)`, before any change.
"""

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

APPS = ("governance", "ledger", "exchange")

CONTROL_TRADING = "governance.control_trading"
TRIP_BREAKER = "governance.trip_breaker"
RESET_BREAKER = "governance.reset_breaker"
EDIT_RULESET = "governance.edit_ruleset"
APPROVE_RULESET = "governance.approve_ruleset"
REQUEST_FORCE = "governance.request_force"
APPROVE_FORCE = "governance.approve_force"
EXPORT_REPORTS = "ledger.export_reports"
VERIFY_AUDIT = "ledger.verify_audit"

OPERATOR_ACTIONS = (CONTROL_TRADING, TRIP_BREAKER, RESET_BREAKER, REQUEST_FORCE)
ROLES = {
    "viewer": (),
    "operator": OPERATOR_ACTIONS,
    "risk_officer": (*OPERATOR_ACTIONS, EDIT_RULESET, APPROVE_RULESET, APPROVE_FORCE),
    "compliance": (EXPORT_REPORTS, VERIFY_AUDIT),
}


class PermissionDenied(Exception):
    """A user asked for something their role may not do (the message says what and why)."""


def _permissions(names):
    wanted = {tuple(name.split(".", 1)) for name in names}
    found = Permission.objects.filter(content_type__app_label__in=APPS).select_related("content_type")
    return [p for p in found if (p.content_type.app_label, p.codename) in wanted]


@transaction.atomic
def roles_ensure() -> None:
    """Create the four groups with exactly their permissions (every role also reads everything).
    Idempotent: run after every migrate."""
    view = list(Permission.objects.filter(content_type__app_label__in=APPS, codename__startswith="view_"))
    for role, actions in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([*view, *_permissions(actions)])


def user_role(user) -> str | None:
    names = [g.name for g in user.groups.all() if g.name in ROLES]
    return names[0] if names else None


def user_may(user, permission: str) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(permission))


def require(user, permission: str, action: str) -> None:
    """Raise PermissionDenied unless `user` may do `action` (which needs `permission`)."""
    if not user_may(user, permission):
        role = user_role(user) if user is not None else None
        raise PermissionDenied(f"{getattr(user, 'username', user)} ({role or 'no role'}) may not {action}")


def staff_user(name: str):
    """The active staff user called `name`, or None."""
    return get_user_model().objects.filter(username=name, is_active=True, is_staff=True).first()


def command_actor(*, user: str | None, permission: str, action: str, required: bool) -> str:
    """Who a management command acts as, checked against their role (CONTRACT.md §2b).

    `--user NAME` naming a staff user: that user's role decides, and a refusal raises
    PermissionDenied. Commands that need two identities (ruleset, force, export) require a
    staff user. The others (trading, breaker) may omit it or name someone who is not staff:
    shell access to manage.py already holds the database, so they run with full rights and
    record that name, or the shell account."""
    if user:
        staff = staff_user(user)
        if staff is not None:
            require(staff, permission, action)
            return f"operator:{staff.username}"
    if required:
        raise PermissionDenied(f"{user or 'nobody'} is not a staff user; --user must name one to {action}")
    return f"operator:{user or getpass.getuser()}"
