"""Proposal input validation and the proposal's JSON shape (CONTRACT.md §1)."""

import re
import unicodedata
from datetime import datetime, timedelta
from decimal import Context, Decimal, InvalidOperation, localcontext

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chronosx.canonical import decimal_text
from governance.models import Decision, Instrument, Node, Proposal, Vote
from governance.selectors.forcing import force_summary
from governance.selectors.quorum import quorum_summary

CLOCK_SKEW = timedelta(seconds=5)
# A signal older than this is refused (400); a stale one inside it is decided and blocked by signal_age.
MAX_SIGNAL_AGE = timedelta(days=7)
MAX_DECIMAL_DIGITS = 36
# CONTRACT.md §1: an optional "-", ASCII digits, at most one "." followed by digits. Nothing
# else: no exponent, no spaces, no other digit forms ("１２" is not 12 here).
DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def control_character_problem(text: str) -> str | None:
    """Why a string may not be stored as sent: it holds a control character (NUL included)."""
    for char in text:
        if unicodedata.category(char) == "Cc":
            return f"must not contain control characters (found U+{ord(char):04X})"
    return None


def plain_digits(value: Decimal) -> int:
    """How many digits the value has written without an exponent (leading zeros aside),
    computed from its parts so a huge exponent costs nothing."""
    _, digits, exponent = value.as_tuple()
    if exponent >= 0:
        return len(digits) + exponent
    return max(len(digits), -exponent)


# Its OpenAPI shape (pattern, > 0 on input) is governance.schema.DecimalStringFieldExtension.
class DecimalStringField(serializers.Field):
    """A decimal given as a JSON string, kept exact (never through float)."""

    def __init__(self, *, positive=True, **kwargs):
        self.positive = positive
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a decimal string, e.g. \"0.0100\"")
        if not DECIMAL_TEXT.fullmatch(data):
            raise serializers.ValidationError("must be a plain decimal string of ASCII digits, e.g. \"0.0100\"")
        try:
            value = Decimal(data)
        except InvalidOperation:
            raise serializers.ValidationError("must be a decimal string, e.g. \"0.0100\"")
        if not value.is_finite() or plain_digits(value) > MAX_DECIMAL_DIGITS:
            raise serializers.ValidationError(f"must be a finite decimal of at most {MAX_DECIMAL_DIGITS} digits")
        if self.positive and value <= 0:
            raise serializers.ValidationError("must be greater than 0")
        return value

    def to_representation(self, value):
        # format "f", not str(): str(Decimal("0.00000001")) is "1E-8", not what was sent.
        return None if value is None else decimal_text(value)


class StrictCharField(serializers.CharField):
    """A JSON string taken exactly as sent: DRF's CharField would quietly turn 123 into "123"
    and trim spaces; here neither happens, and control characters are refused."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string")
        problem = control_character_problem(data)
        if problem:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)


# Its OpenAPI shape is governance.schema.JSONNumberFieldExtension.
class JSONNumberField(serializers.Field):
    """A JSON number (not a string, not a boolean), kept as an exact Decimal."""

    def __init__(self, *, min_value, max_value=None, **kwargs):
        self.min_value, self.max_value = Decimal(min_value), None if max_value is None else Decimal(max_value)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, Decimal)):
            raise serializers.ValidationError("must be a number")
        value = Decimal(data)
        # 1e999999999 is valid JSON: written out it is a billion digits, in every
        # check detail and audit payload. Refused like an over-long decimal string.
        if not value.is_finite() or plain_digits(value) > MAX_DECIMAL_DIGITS:
            raise serializers.ValidationError(f"must be a finite number of at most {MAX_DECIMAL_DIGITS} digits")
        if value < self.min_value:
            raise serializers.ValidationError(f"must be >= {self.min_value}")
        if self.max_value is not None and value > self.max_value:
            raise serializers.ValidationError(f"must be <= {self.max_value}")
        return value

    def to_representation(self, value):
        # Whole values print as integers ("5"), others as the shortest float that round-trips.
        if value == value.to_integral_value() and value.as_tuple().exponent >= 0:
            return int(value)
        return float(value)


class ProposalInSerializer(serializers.Serializer):
    strategy = StrictCharField(max_length=64)
    symbol = StrictCharField(max_length=32)
    side = serializers.ChoiceField(choices=Proposal.Side.choices)
    quantity = DecimalStringField()
    order_type = serializers.ChoiceField(choices=Proposal.OrderType.choices)
    limit_price = DecimalStringField(required=False, allow_null=True)
    reference_price = DecimalStringField()
    expected_slippage_bps = JSONNumberField(min_value=0)
    confidence = JSONNumberField(min_value=0, max_value=1)
    signal_time = StrictCharField(max_length=64)
    intent = serializers.ChoiceField(choices=Proposal.Intent.choices, required=False, default=Proposal.Intent.OPEN)

    def __init__(self, *args, received_at=None, **kwargs):
        # None only when the schema generator builds an instance to describe it.
        self.received_at = received_at
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["the body must be a JSON object"]})
        errors = {}
        unknown = sorted(set(data) - set(self.fields))
        for name in unknown:
            errors[name] = ["unknown field"]
        try:
            values = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors = {**exc.detail, **errors}
            raise serializers.ValidationError(errors)
        if errors:
            raise serializers.ValidationError(errors)
        return values

    def validate_symbol(self, value):
        instrument = Instrument.objects.filter(symbol=value).first()
        if instrument is None:
            raise serializers.ValidationError(f"unknown instrument {value!r}")
        return instrument

    def validate_signal_time(self, value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise serializers.ValidationError("must be an ISO-8601 date-time, e.g. 2026-11-25T12:00:00+00:00")
        if parsed.tzinfo is None:
            raise serializers.ValidationError("must carry a UTC offset, e.g. +00:00 or Z")
        now = self.received_at or timezone.now()
        if parsed > now + CLOCK_SKEW:
            raise serializers.ValidationError("is in the future (more than 5 s of clock skew)")
        if parsed < now - MAX_SIGNAL_AGE:
            raise serializers.ValidationError("is older than 7 days")
        return parsed

    def validate(self, attrs):
        errors = {}
        if attrs["order_type"] == "limit" and attrs.get("limit_price") is None:
            errors["limit_price"] = ["is required for a limit order"]
        if attrs["order_type"] == "market" and "limit_price" in self.initial_data:
            errors["limit_price"] = ["is not allowed for a market order"]
        instrument, quantity = attrs["symbol"], attrs["quantity"]
        if quantity < instrument.min_quantity:
            errors["quantity"] = [f"is below the minimum {instrument.min_quantity} for {instrument.symbol}"]
        elif _remainder(quantity, instrument.quantity_step) != 0:
            errors["quantity"] = [f"must be a multiple of the step {instrument.quantity_step} for {instrument.symbol}"]
        if errors:
            raise serializers.ValidationError(errors)
        attrs.setdefault("limit_price", None)
        return attrs


def _remainder(value: Decimal, step: Decimal) -> Decimal:
    with localcontext(Context(prec=100)):
        return value % step


# --- output ----------------------------------------------------------------------


class CheckSerializer(serializers.Serializer):
    rule = serializers.CharField()
    passed = serializers.BooleanField()
    detail = serializers.CharField()


class DecisionSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=Decision.Outcome.choices)
    approved_quantity = DecimalStringField(allow_null=True)
    ruleset_version = serializers.IntegerField()
    decided_at = serializers.DateTimeField()
    checks = CheckSerializer(many=True)
    digest = serializers.CharField()  # beyond the contract: the SHA-256 the MPC votes sign


class VoteSerializer(serializers.Serializer):
    node = serializers.ChoiceField(choices=Node.choices)
    verdict = serializers.ChoiceField(choices=Vote.Verdict.choices)
    reason = serializers.CharField()
    cast_at = serializers.DateTimeField()
    signature = serializers.CharField()
    key_id = serializers.CharField()
    # Beyond the contract: what the signature covers, and whether it verifies now.
    decision_digest = serializers.CharField()
    force_digest = serializers.CharField(allow_null=True)  # a forced proposal's votes sign its force record too
    verified = serializers.BooleanField()


class QuorumSerializer(serializers.Serializer):
    required = serializers.IntegerField()
    approvals = serializers.IntegerField()
    met = serializers.BooleanField()
    votes = VoteSerializer(many=True)


class FillSerializer(serializers.Serializer):
    trade_id = serializers.CharField()
    price = DecimalStringField()
    quantity = DecimalStringField()
    fee = DecimalStringField(positive=False)
    fee_asset = serializers.CharField()
    filled_at = serializers.DateTimeField()


class OrderSerializer(serializers.Serializer):
    client_order_id = serializers.CharField()
    venue = serializers.ChoiceField(choices=["sandbox", "weex"])
    live = serializers.BooleanField()
    status = serializers.CharField()
    quantity = DecimalStringField()
    filled_quantity = DecimalStringField(positive=False)
    average_price = DecimalStringField(allow_null=True)
    fills = FillSerializer(many=True)


class ForceSerializer(serializers.Serializer):
    """A forced proposal's force record (CONTRACT.md §2b)."""

    requested_by = serializers.CharField()
    approved_by = serializers.CharField()
    reason = serializers.CharField()
    approved_at = serializers.DateTimeField()


class ProposalSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    strategy = serializers.CharField(source="strategy.slug")
    symbol = serializers.CharField(source="instrument.symbol")
    side = serializers.ChoiceField(choices=Proposal.Side.choices)
    quantity = DecimalStringField()
    order_type = serializers.ChoiceField(choices=Proposal.OrderType.choices)
    limit_price = DecimalStringField(allow_null=True)
    reference_price = DecimalStringField()
    expected_slippage_bps = JSONNumberField(min_value=0)
    confidence = JSONNumberField(min_value=0, max_value=1)
    signal_time = serializers.DateTimeField()
    intent = serializers.ChoiceField(choices=Proposal.Intent.choices)
    received_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=Proposal.Status.choices)
    decision = serializers.SerializerMethodField()
    quorum = serializers.SerializerMethodField()
    orders = OrderSerializer(many=True, source="orders.all")
    forced = serializers.SerializerMethodField()
    force = serializers.SerializerMethodField()

    @extend_schema_field(DecisionSerializer(allow_null=True))
    def get_decision(self, proposal):
        decision = getattr(proposal, "decision", None)
        return None if decision is None else DecisionSerializer(decision).data

    @extend_schema_field(QuorumSerializer(allow_null=True))
    def get_quorum(self, proposal):
        summary = quorum_summary(proposal=proposal)
        return None if summary is None else QuorumSerializer(summary).data

    @extend_schema_field(serializers.BooleanField())
    def get_forced(self, proposal):
        return force_summary(proposal=proposal)["forced"]

    @extend_schema_field(ForceSerializer(allow_null=True))
    def get_force(self, proposal):
        force = force_summary(proposal=proposal)["force"]
        return None if force is None else ForceSerializer(force).data
