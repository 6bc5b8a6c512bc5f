from django.contrib import admin

from exchange.models import Order, SandboxOrder, VenueHealth


class ReadOnly(admin.ModelAdmin):
    """Written by the router and venues only; operators look, never edit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(ReadOnly):
    list_display = ("client_order_id", "venue", "live", "symbol", "side", "quantity", "status", "filled_quantity", "updated_at")
    list_filter = ("venue", "live", "status")
    search_fields = ("client_order_id", "venue_order_id", "proposal__id")


@admin.register(SandboxOrder)
class SandboxOrderAdmin(ReadOnly):
    list_display = ("client_order_id", "symbol", "side", "quantity", "status", "average_price", "live", "created_at")


@admin.register(VenueHealth)
class VenueHealthAdmin(ReadOnly):
    list_display = ("venue", "consecutive_errors", "last_error_at", "last_ok_at", "last_latency_ms")
