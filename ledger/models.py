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


class CurrentTransactionId(models.Func):
    """The id of the transaction writing the row (PostgreSQL), so the sequencer can tell
    which events' transactions have ended. SQLite runs one writer at a time: 0."""

    output_field = models.BigIntegerField()

    def as_sql(self, compiler, connection, **extra_context):
        return "0", []

    def as_postgresql(self, compiler, connection, **extra_context):
        return "pg_current_xact_id()::text::bigint", []


# The content of an event, which never changes once written.
AUDIT_CONTENT = ("kind", "actor", "created_at", "proposal_id", "payload", "txid")


class AuditEvent(models.Model):
    """One event of the append-only audit trail, and its link in the hash chain.

    A business transaction writes the event unchained (no lock, no read of the chain's
    end). The sequencer (ledger.services.audit_chain_extend) then links committed events
    into the chain, in the order of their ids, within a second: it sets seq, prev_hash
    and hash, once. The database refuses anything else: the content never changes, a
    link is written once and never rewritten, and nothing is deleted.

    `payload` is the canonical JSON text exactly as hashed, so verification never
    depends on how a JSON column re-serializes it.
    """

    seq = models.BigIntegerField(unique=True, null=True, blank=True)
    kind = models.CharField(max_length=64, db_index=True)
    actor = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    proposal_id = models.UUIDField(null=True, blank=True, db_index=True)
    payload = models.TextField()
    prev_hash = models.CharField(max_length=64, null=True, blank=True)
    hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    txid = models.BigIntegerField(db_default=CurrentTransactionId(), editable=False)

    class Meta:
        ordering = ["id"]
        permissions = [
            ("export_reports", "Export compliance reports (proposals, votes, orders, fills, audit, PDF report)"),
            ("verify_audit", "Verify the audit chain"),
        ]
        indexes = [
            models.Index(fields=["id"], condition=models.Q(hash__isnull=True), name="audit_event_unchained"),
        ]
        triggers = [
            pgtrigger.Protect(name="audit_event_no_delete", operation=pgtrigger.Delete),
            pgtrigger.Protect(
                name="audit_event_linked_once",
                operation=pgtrigger.Update,
                condition=(
                    pgtrigger.Q(old__hash__isnull=False)
                    | pgtrigger.Q(new__hash__isnull=True)
                    | pgtrigger.Q(new__seq__isnull=True)
                    | pgtrigger.Q(new__prev_hash__isnull=True)
                    | pgtrigger.Q(old__id__df=pgtrigger.F("new__id"))
                    | pgtrigger.Q(old__kind__df=pgtrigger.F("new__kind"))
                    | pgtrigger.Q(old__actor__df=pgtrigger.F("new__actor"))
                    | pgtrigger.Q(old__created_at__df=pgtrigger.F("new__created_at"))
                    | pgtrigger.Q(old__proposal_id__df=pgtrigger.F("new__proposal_id"))
                    | pgtrigger.Q(old__payload__df=pgtrigger.F("new__payload"))
                    | pgtrigger.Q(old__txid__df=pgtrigger.F("new__txid"))
                ),
            ),
            refuse_truncate("audit_event_no_truncate"),
        ]

    def __str__(self):
        return f"#{self.seq} {self.kind}"


class Fill(models.Model):
    """A venue execution. Keyed by the order and the venue's trade id: a fill seen twice is
    stored once, while a venue that reuses a trade id (after its own restart) on another
    order still has that other fill booked."""

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
        constraints = [models.UniqueConstraint(fields=["venue", "order", "trade_id"], name="one_fill_per_order_trade")]
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


class Lot(models.Model):
    """One opening fill's quantity, consumed first-in first-out by closing fills.

    The lot carries the entry fee paid on it (quote currency); that fee is realized
    pro rata as the lot is closed, so realized PnL is always net of both fees.
    """

    class Direction(models.TextChoices):
        LONG = "long"
        SHORT = "short"

    strategy = models.ForeignKey("governance.Strategy", on_delete=models.PROTECT)
    instrument = models.ForeignKey("governance.Instrument", on_delete=models.PROTECT)
    direction = models.CharField(max_length=5, choices=Direction.choices)
    fill = models.OneToOneField(Fill, on_delete=models.PROTECT, related_name="lot")
    entry_price = ExactDecimalField()
    quantity = ExactDecimalField(help_text="opened, base units")
    remaining = ExactDecimalField(help_text="still open, base units")
    entry_fee = ExactDecimalField(default="0", help_text="quote currency, paid on opening")
    remaining_entry_fee = ExactDecimalField(default="0", help_text="part of entry_fee not yet realized")
    opened_at = models.DateTimeField()
    # Set when nothing remains: decimals are stored as exact strings, so "open" is a
    # column the database can filter on.
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["opened_at", "id"]
        indexes = [models.Index(fields=["strategy", "instrument", "closed_at"])]

    def __str__(self):
        return f"{self.direction} {self.remaining}/{self.quantity} {self.instrument_id} @ {self.entry_price}"


class RealizedPnl(models.Model):
    """The profit or loss one closing fill realized, net of fees, with its FIFO breakdown.

    amount = gross − fees, where gross = Σ (exit − entry) × quantity over the lots
    consumed (reversed for shorts) and fees = their consumed entry fees + the exit fee,
    all in the quote currency. A fee paid in another asset is not converted: it is
    kept in `unconverted_fees` and reported by asset, never guessed into the quote.
    """

    fill = models.OneToOneField(Fill, on_delete=models.PROTECT, related_name="realized")
    strategy = models.ForeignKey("governance.Strategy", on_delete=models.PROTECT)
    instrument = models.ForeignKey("governance.Instrument", on_delete=models.PROTECT)
    date = models.DateField(help_text="UTC day of the closing fill", db_index=True)
    quantity = ExactDecimalField()
    gross = ExactDecimalField()
    fees = ExactDecimalField(help_text="quote currency: consumed entry fees + exit fee")
    amount = ExactDecimalField(help_text="gross − fees, quote currency")
    unconverted_fees = models.JSONField(default=dict, blank=True, help_text="{asset: amount} not in the quote currency")
    lots = models.JSONField(help_text="[{lot, quantity, entry_price, entry_fee}] consumed, FIFO order")
    live = models.BooleanField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["date", "id"]
        triggers = [
            # Derived from append-only fills: never rewritten either.
            pgtrigger.Protect(name="realized_pnl_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]
