"""OpenAPI pieces shared by the agent API (GET /api/v1/schema/): the error envelope, the
headers, the exact shapes of the fields the serializers check by hand, and the response
bodies the views build as plain dicts. The schema describes what the server does: a rule
JSON Schema can state is stated here; one it cannot (an instrument that exists, a quantity
on the instrument's step, a signal inside its time window) is said in the description."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer
from rest_framework import serializers

from chronosx.api import CODES, IdempotencyConflict, IdempotencyKeyRequired, TooLarge
from governance.models import Mode
from governance.serializers import MAX_DECIMAL_DIGITS, DecimalStringField, ProposalInSerializer, StrictCharField

# --- field shapes ------------------------------------------------------------------------

# CONTRACT.md §1: an optional "-", ASCII digits, at most one "." followed by digits.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
# What a positive input decimal may not be, on top of DECIMAL_PATTERN: negative, zero, or
# longer than MAX_DECIMAL_DIGITS digits written out (leading zeros aside: from the first
# significant digit on, or the fraction alone).
_NOT_A_POSITIVE_DECIMAL = (
    rf"^-|^[0.]+$|[1-9](\.?[0-9]){{{MAX_DECIMAL_DIGITS}}}|\.[0-9]{{{MAX_DECIMAL_DIGITS + 1}}}"
)
# A string as the API stores it: unicodedata category Cc (C0, DEL, C1) is refused.
CONTROL_CHARACTER = r"[\u0000-\u001F\u007F-\u009F]"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"


class DecimalStringFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "governance.serializers.DecimalStringField"

    def map_serializer_field(self, auto_schema, direction):
        schema = {"type": "string", "pattern": DECIMAL_PATTERN, "example": "0.0100"}
        if direction == "request" and self.target.positive:
            schema["not"] = {"pattern": _NOT_A_POSITIVE_DECIMAL}
            schema["description"] = f"a decimal string > 0 of at most {MAX_DECIMAL_DIGITS} digits"
        return schema


class JSONNumberFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "governance.serializers.JSONNumberField"

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = {"type": "number", "minimum": float(field.min_value)}
        if field.max_value is not None:
            schema["maximum"] = float(field.max_value)
        elif direction == "request":
            # 10^36 is the first whole number of more than 36 digits.
            schema.update({"maximum": float(10**MAX_DECIMAL_DIGITS), "exclusiveMaximum": True})
        if direction == "request":
            schema["description"] = f"a JSON number (not a string) of at most {MAX_DECIMAL_DIGITS} digits written out"
        return schema


class StrictCharFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "governance.serializers.StrictCharField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if not self.target.allow_blank:
            schema["minLength"] = 1
        # `not`, where a `pattern` would make drf-spectacular wrap a blank-allowing field in a oneOf
        # that "" matches twice.
        schema["not"] = {"pattern": CONTROL_CHARACTER}
        return schema


# --- request bodies ----------------------------------------------------------------------

_CONTEXT_RULES = (
    "Also refused with 400, by rules that depend on stored data: a `symbol` that is not a known "
    "instrument; a `quantity` below the instrument's minimum or off its step; a `signal_time` more "
    "than 5 s in the future or older than 7 days. A `strategy` the agent is not bound to is 403."
)


class SignalTimeField(StrictCharField):
    """Schema only: signal_time is read as text and parsed by ProposalInSerializer.validate_signal_time."""


class SignalTimeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = SignalTimeField

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "string",
            "format": "date-time",
            "maxLength": self.target.max_length,
            # RFC 3339 also allows a lower-case "t" and "z" and a leap second, which Python's ISO 8601
            # parser refuses; a pattern or `not` saying so makes Hypothesis' generation twice as slow.
            "description": "ISO 8601 with a UTC offset (upper-case T and Z, no leap second); at most 5 s "
            "ahead of the server's clock, at most 7 days old",
        }


class _ProposalInSchema(ProposalInSerializer):
    signal_time = SignalTimeField(max_length=ProposalInSerializer._declared_fields["signal_time"].max_length)


class LimitProposalInSerializer(_ProposalInSchema):
    order_type = serializers.ChoiceField(choices=[("limit", "limit")])
    limit_price = DecimalStringField()  # required, not null

    class Meta:
        ref_name = "LimitProposalIn"


class MarketProposalInSerializer(_ProposalInSchema):
    order_type = serializers.ChoiceField(choices=[("market", "market")])
    limit_price = None  # refused for a market order

    class Meta:
        ref_name = "MarketProposalIn"


PROPOSAL_IN = PolymorphicProxySerializer(
    component_name="ProposalIn",
    serializers={"limit": LimitProposalInSerializer, "market": MarketProposalInSerializer},
    resource_type_field_name="order_type",
)


# --- response bodies built as dicts ------------------------------------------------------


ERROR_CODES = sorted(
    {*CODES.values(), IdempotencyKeyRequired.default_code, IdempotencyConflict.default_code, TooLarge.default_code}
)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=ERROR_CODES)
    message = serializers.CharField(min_length=1)
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(), min_length=1),
        required=False,
        help_text="each refused field, by name (nested ones joined with dots), with why",
    )


class ErrorSerializer(serializers.Serializer):
    """CONTRACT.md §1: every error answer has this body."""

    error = ErrorDetailSerializer()


class LivenessSerializer(serializers.Serializer):
    alive = serializers.BooleanField()
    last_heartbeat = serializers.DateTimeField(allow_null=True)


class NodesSerializer(serializers.Serializer):
    """Empty while the database is down."""

    risk = LivenessSerializer(required=False)
    portfolio = LivenessSerializer(required=False)
    execution = LivenessSerializer(required=False)


class WorkersSerializer(serializers.Serializer):
    """Empty while the database is down; `embedded`: the server process itself."""

    governance = LivenessSerializer(required=False)
    router = LivenessSerializer(required=False)
    scheduler = LivenessSerializer(required=False)


class TradingSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    reason = serializers.CharField()
    state = serializers.ChoiceField(choices=["enabled", "reduce_only", "halted"])


class BreakerSerializer(serializers.Serializer):
    name = serializers.CharField()
    tripped = serializers.BooleanField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded", "down"])
    database = serializers.ChoiceField(choices=["ok", "down"])
    broker = serializers.ChoiceField(choices=["ok", "embedded", "down"])
    nodes = NodesSerializer()
    workers = WorkersSerializer()
    trading = TradingSerializer()
    circuit_breakers = BreakerSerializer(many=True)


class DecimalText(serializers.CharField):
    """A decimal string in an answer (schema only: the views write these themselves)."""


class DecimalTextExtension(OpenApiSerializerFieldExtension):
    target_class = DecimalText

    def map_serializer_field(self, auto_schema, direction):
        schema = {"type": "string", "pattern": DECIMAL_PATTERN}
        if self.target.allow_null:
            schema["nullable"] = True
        return schema


class PositionSerializer(serializers.Serializer):
    strategy = serializers.CharField()
    symbol = serializers.CharField()
    quantity = DecimalText()
    average_entry_price = DecimalText(allow_null=True)


class ExposureSerializer(serializers.Serializer):
    gross = DecimalText()
    by_asset = serializers.DictField(child=DecimalText())
    by_strategy = serializers.DictField(child=DecimalText())


class PortfolioSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Mode.choices)
    realized_pnl = DecimalText()
    fees_paid = DecimalText(help_text="fees paid so far, in the quote currency")
    fees_paid_by_asset = serializers.DictField(child=DecimalText(), help_text="every fee in the asset it was paid in")
    positions = PositionSerializer(many=True)
    exposure = ExposureSerializer()
    realized_pnl_by_strategy = serializers.DictField(child=DecimalText())
    realized_pnl_note = serializers.CharField(required=False, help_text="ALPHA mode only")
    execution_quality = serializers.DictField(required=False, help_text="full mode only: by live/sandbox, strategy, symbol")


class RealizedGroupSerializer(serializers.Serializer):
    amount = DecimalText()
    gross = DecimalText()
    fees = DecimalText()
    quantity = DecimalText()
    closes = serializers.IntegerField(min_value=0)


class RealizedPnlSerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=["strategy", "instrument", "day"])
    currency = serializers.CharField()
    realized_pnl = serializers.DictField(child=RealizedGroupSerializer())


# --- parameters, headers and error answers -------------------------------------------------

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
    OpenApiParameter.HEADER,
    required=True,
    description="1-64 characters of A-Z a-z 0-9 _ . : - ; kept at least 24 h per agent",
)
LOCATION = OpenApiParameter(
    "Location",
    {"type": "string", "format": "uri"},
    OpenApiParameter.HEADER,
    required=True,
    response=[200, 202],
    description="the proposal's URL",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.HEADER,
    required=True,
    response=[429, 503],
    description="seconds to wait before trying again",
)
WWW_AUTHENTICATE = OpenApiParameter(
    "WWW-Authenticate",
    {"type": "string", "enum": ["Token"]},
    OpenApiParameter.HEADER,
    required=True,
    response=[401],
)
# An empty query parameter (`?since=`, as a URL template fills it) means the parameter is absent.
_BLANK = {"type": "string", "maxLength": 0}


def query(name: str, schema: dict, description: str = "") -> OpenApiParameter:
    """A query parameter of this schema, or empty."""
    return OpenApiParameter(name, {"oneOf": [schema, _BLANK]}, OpenApiParameter.QUERY, description=description)


PROPOSAL_ID = OpenApiParameter("proposal_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="unknown ids are 404")

_ERRORS = {
    400: "`invalid`: a field or parameter is missing, malformed, out of range or unknown; `fields` names each",
    401: "`not_authenticated`: no token, or a bad one",
    403: "`forbidden`: the agent is not bound to that strategy (whether or not it exists)",
    404: "`not_found`: unknown id, or a proposal of a strategy the agent is not bound to",
    406: "`not_acceptable`: the `Accept` header allows no JSON",
    409: "`idempotency_conflict`: this `Idempotency-Key` was used before with a different body",
    413: "`too_large`: the body is over 64 KiB",
    415: "`unsupported_media_type`: the body is not `application/json`",
    429: "`throttled`: over the agent's request rate, or `overloaded`: too many proposals await a decision, votes or routing"
    " (nothing stored); retry after `Retry-After` seconds",
    503: "`unavailable`: the database is away; nothing was stored, retry after `Retry-After` seconds",
}
# The answers every authenticated operation may give, whatever it is asked.
AUTHENTICATED = (401, 406, 429, 503)


def error_responses(*statuses: int) -> dict:
    """`{status: the error envelope}`, each described by when it is answered."""
    return {status: OpenApiResponse(ErrorSerializer, description=_ERRORS[status]) for status in statuses}


def error_headers(*statuses: int) -> list[OpenApiParameter]:
    """The response headers that go with these error statuses."""
    headers = []
    if 401 in statuses:
        headers.append(WWW_AUTHENTICATE)
    if {429, 503} & set(statuses):
        headers.append(RETRY_AFTER)
    return headers


def postprocess(result, generator, request, public):
    """Bodies that refuse unknown fields say so; so does the fixed error envelope. Every
    body the API takes is required (drf-spectacular cannot tell for a oneOf)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
    schemas = result.get("components", {}).get("schemas", {})
    for name in ("LimitProposalIn", "MarketProposalIn", "Error", "ErrorDetail"):
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    if "ErrorDetail" in schemas:
        schemas["ErrorDetail"]["properties"]["fields"]["minProperties"] = 1
    for name in ("LimitProposalIn", "MarketProposalIn"):
        if name in schemas:
            schemas[name]["description"] = _CONTEXT_RULES
    return result

