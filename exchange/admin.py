from django.contrib import admin

from chronosx.admin import ReadOnlyAdmin
from exchange.models import Order, SandboxOrder


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("client_order_id", "venue", "live", "symbol", "side", "quantity", "status", "filled_quantity", "updated_at")
    list_filter = ("venue", "live", "status")
    search_fields = ("client_order_id", "venue_order_id", "proposal__id")


@admin.register(SandboxOrder)
class SandboxOrderAdmin(ReadOnlyAdmin):
    list_display = ("client_order_id", "symbol", "side", "quantity", "status", "average_price", "live", "created_at")
