from django.contrib import admin

from chronosx.admin import ReadOnlyAdmin
from exchange.models import Order, SandboxOrder, VenueHealth


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("client_order_id", "venue", "live", "symbol", "side", "quantity", "status", "filled_quantity", "updated_at")
    list_filter = ("venue", "live", "status")
    search_fields = ("client_order_id", "venue_order_id", "proposal__id")


@admin.register(SandboxOrder)
class SandboxOrderAdmin(ReadOnlyAdmin):
    list_display = ("client_order_id", "symbol", "side", "quantity", "status", "average_price", "live", "created_at")


@admin.register(VenueHealth)
class VenueHealthAdmin(ReadOnlyAdmin):
    list_display = ("venue", "consecutive_errors", "last_error_at", "last_ok_at", "last_latency_ms")
