from django.db import models

from chronosx.fields import ExactDecimalField


class Order(models.Model):
    """An order for one approved proposal. Created before any network call, so a
    crash or an unknown outcome is always visible and looked up, never resent blind."""

    class Status(models.TextChoices):
        NEW = "new"  # row written, not yet sent
        SENDING = "sending"  # a send is under way
        UNKNOWN = "unknown"  # sent, outcome unknown (timeout, 5xx): look it up
        OPEN = "open"
        PARTIALLY_FILLED = "partially_filled"
        CANCELLING = "cancelling"  # a cancel is under way
        CANCEL_UNKNOWN = "cancel_unknown"  # cancel sent, outcome unknown (timeout, 5xx): look it up
        FILLED = "filled"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    proposal = models.ForeignKey("governance.Proposal", on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(max_length=40, unique=True)
    venue = models.CharField(max_length=16)
    live = models.BooleanField()
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    order_type = models.CharField(max_length=6)
    quantity = ExactDecimalField()
    limit_price = ExactDecimalField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    venue_order_id = models.CharField(max_length=64, blank=True)
    filled_quantity = ExactDecimalField(default="0")
    average_price = ExactDecimalField(null=True, blank=True)
    send_attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    # The latest look-up outcome and how many times in a row it came back the same: an
    # order the venue cannot answer for is looked up every few seconds, but the audit
    # trail records a steady outcome only at its 1st, 2nd, 4th, 8th… repeat.
    lookup_outcome = models.CharField(max_length=300, blank=True)
    # Set by the kill switch on an order whose send was still under way: once it turns out
    # to rest at the venue, the reconciler cancels it.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    lookup_repeats = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "updated_at"])]

    def __str__(self):
        return self.client_order_id


class SandboxOrder(models.Model):
    """The in-process sandbox venue's own order book. Keyed by client order id like a
    real venue, so a resend with the same id is refused and a look-up finds it."""

    client_order_id = models.CharField(max_length=40, unique=True)
    venue_order_id = models.CharField(max_length=64, unique=True)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    order_type = models.CharField(max_length=6)
    quantity = ExactDecimalField()
    limit_price = ExactDecimalField(null=True, blank=True)
    status = models.CharField(max_length=16)
    filled_quantity = ExactDecimalField(default="0")
    average_price = ExactDecimalField(null=True, blank=True)
    # [{"trade_id", "price", "quantity", "fee", "fee_asset", "filled_at"}] as exact strings.
    fills = models.JSONField(default=list)
    live = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"sandbox {self.client_order_id}"
