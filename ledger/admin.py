from django.contrib import admin

from chronosx.admin import ReadOnlyAdmin
from ledger.models import Fill, Lot, Position, RealizedPnl

# The audit trail's admin is compliance's (compliance/admin.py): it verifies the chain against
# the nodes' signed checkpoints, which the ledger does not know.


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = ["filled_at", "venue", "live", "trade_id", "strategy", "instrument", "side", "intent", "price", "quantity", "fee", "fee_asset"]
    list_filter = ["venue", "live", "intent", "strategy", "instrument"]
    search_fields = ["=trade_id", "order__client_order_id"]


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ["strategy", "instrument", "quantity", "entry_notional", "updated_at"]
    list_filter = ["strategy", "instrument"]


@admin.register(Lot)
class LotAdmin(ReadOnlyAdmin):
    list_display = ["opened_at", "strategy", "instrument", "direction", "entry_price", "quantity", "remaining", "entry_fee", "remaining_entry_fee", "closed_at"]
    list_filter = ["strategy", "instrument", "direction"]


@admin.register(RealizedPnl)
class RealizedPnlAdmin(ReadOnlyAdmin):
    list_display = ["date", "strategy", "instrument", "quantity", "gross", "fees", "amount", "unconverted_fees", "live"]
    list_filter = ["strategy", "instrument", "live", "date"]
