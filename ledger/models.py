import pgtrigger
from django.db import models

from chronosx.fields import ExactDecimalField


def refuse_truncate(name):
    # pgtrigger's Protect has no TRUNCATE form; this is its statement-level equivalent.
    return pgtrigger.Trigger(
        name=name,
        operation=pgtrigger.Truncate,
        when=pgtrigger.Before,
        level=pgtrigger.Statement,
        func="RAISE EXCEPTION 'append-only table %: TRUNCATE is refused', TG_TABLE_NAME;",
    )


class AuditEvent(models.Model):
    """One link of the append-only, hash-chained audit trail.

    `payload` is the canonical JSON text exactly as hashed, so verification never
    depends on how a JSON column re-serializes it.
    """

    seq = models.BigIntegerField(unique=True)
    kind = models.CharField(max_length=64, db_index=True)
    actor = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    proposal_id = models.UUIDField(null=True, blank=True, db_index=True)
    payload = models.TextField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        triggers = [
            pgtrigger.Protect(name="audit_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            refuse_truncate("audit_event_no_truncate"),
        ]

    def __str__(self):
        return f"#{self.seq} {self.kind}"


class Fill(models.Model):
    """A venue execution. Keyed by the venue's trade id: a fill seen twice is stored once."""

    venue = models.CharField(max_length=16)
    trade_id = models.CharField(max_length=128)
    order = models.ForeignKey("exchange.Order", on_delete=models.PROTECT, related_name="fills")
    strategy = models.ForeignKey("governance.Strategy", on_delete=models.PROTECT)
    instrument = models.ForeignKey("governance.Instrument", on_delete=models.PROTECT)
    side = models.CharField(max_length=4)
    intent = models.CharField(max_length=5, default="open")
    price = ExactDecimalField()
    quantity = ExactDecimalField()
    fee = ExactDecimalField(default="0")
    fee_asset = models.CharField(max_length=16, default="USDT")
    filled_at = models.DateTimeField()
    live = models.BooleanField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["filled_at", "id"]
        constraints = [models.UniqueConstraint(fields=["venue", "trade_id"], name="one_fill_per_venue_trade")]
        triggers = [
            pgtrigger.Protect(name="fill_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            refuse_truncate("fill_no_truncate"),
        ]


class Position(models.Model):
    """Open quantity and its cost at entry price, per strategy and instrument.

    Derived from fills (FIFO lots); kept as a row so evaluation reads it cheaply.
    `quantity` is signed: negative is short.
    """

    strategy = models.ForeignKey("governance.Strategy", on_delete=models.PROTECT)
    instrument = models.ForeignKey("governance.Instrument", on_delete=models.PROTECT)
    quantity = ExactDecimalField(default="0")
    entry_notional = ExactDecimalField(default="0", help_text="sum of open lots at entry price")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["strategy", "instrument"], name="one_position_per_strategy_instrument")
        ]
