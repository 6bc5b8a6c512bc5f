"""Staff users: one role each (governance.roles), and their two-factor device. Audited."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.roles import ROLES, roles_ensure, user_role
from ledger.services import audit_record


class UnknownRole(ValueError):
    pass


class NotStaff(ValueError):
    pass


@transaction.atomic
def staff_add(*, name: str, role: str, password: str | None, actor: str):
    """Create the staff user `name` with `role`, or move them to it: active staff holding exactly
    that one role, and no longer a superuser (the role is all they may do). The password is set
    when given; a new user without one has an unusable password until it is set."""
    if role not in ROLES:
        raise UnknownRole(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if not Group.objects.filter(name=role).exists():
        roles_ensure()
    user, created = get_user_model().objects.select_for_update().get_or_create(username=name)
    previous = None if created else user_role(user)
    was_superuser = user.is_superuser
    user.is_staff, user.is_active, user.is_superuser = True, True, False
    if password is not None:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.save()
    user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(name=role))
    user.groups.add(Group.objects.get(name=role))
    audit_record(
        kind="staff.added" if created else "staff.role_set",
        actor=actor,
        payload={
            "user": name,
            "role": role,
            "previous_role": previous,
            "superuser_removed": was_superuser,
            "password": "set" if password is not None else ("unusable" if created else "unchanged"),
        },
    )
    return user


@transaction.atomic
def staff_totp_reset(*, name: str, actor: str) -> TOTPDevice:
    """Give the staff user `name` a new TOTP device (replacing any other); its otpauth:// URI
    (`device.config_url`) is the only time the secret is shown."""
    user = get_user_model().objects.select_for_update().filter(username=name, is_staff=True, is_active=True).first()
    if user is None:
        raise NotStaff(f"{name!r} is not an active staff user")
    replaced = TOTPDevice.objects.filter(user=user).delete()[0]
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    audit_record(kind="staff.totp_set", actor=actor, payload={"user": name, "replaced": replaced})
    return device
