from django.contrib import admin
from django.core.exceptions import PermissionDenied


class GuardedAdmin(admin.ModelAdmin):
    """Actions are offered by permission (`@admin.action(permissions=[…])`); one that is not
    offered to this user and is POSTed anyway answers 403, with nothing run (Django alone would
    answer "no action selected" with a redirect, which hides the refusal)."""

    def changelist_view(self, request, extra_context=None):
        action = request.POST.get("action") if request.method == "POST" else None
        if action and action not in self.get_actions(request):
            raise PermissionDenied(f"the action {action!r} is not available to {request.user.get_username()}")
        return super().changelist_view(request, extra_context)


class ReadOnlyAdmin(GuardedAdmin):
    """Records that only services write (ledger, votes, proposals): operators look, never edit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
