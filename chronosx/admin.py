from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that only services write (ledger, votes, proposals): operators look, never edit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
