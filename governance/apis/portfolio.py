import re
from datetime import date

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import schema as oas
from governance.auth import AgentTokenAuthentication
from governance.models import Agent, Mode
from governance.selectors.controls import ruleset_current
from ledger.selectors import portfolio_report, realized_pnl_by


def visible_strategies(principal):
    """An agent sees its own strategies; staff see all (None); anyone else nothing."""
    if isinstance(principal, Agent):
        return principal.strategies.all()
    return None if principal.is_staff else []


class PortfolioApi(APIView):
    authentication_classes = [AgentTokenAuthentication, SessionAuthentication]

    @extend_schema(
        parameters=oas.error_headers(*oas.AUTHENTICATED),
        responses={200: oas.PortfolioSerializer, **oas.error_responses(*oas.AUTHENTICATED)},
        summary="Realized-only portfolio of the agent's strategies (staff: all)",
    )
    def get(self, request):
        ruleset = ruleset_current()
        mode = ruleset.mode if ruleset else Mode.ALPHA
        return Response(portfolio_report(strategies=visible_strategies(request.user), mode=mode))


ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _day(params, name):
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        # fromisoformat alone would also take 20260301 and 2026-W09-7: the schema says YYYY-MM-DD.
        if ISO_DAY.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ValidationError({name: ["must be a date, YYYY-MM-DD"]})


class RealizedPnlApi(APIView):
    authentication_classes = [AgentTokenAuthentication, SessionAuthentication]

    @extend_schema(
        responses={200: oas.RealizedPnlSerializer, **oas.error_responses(400, *oas.AUTHENTICATED)},
        summary="Realized PnL net of fees (FIFO), grouped by strategy, instrument or UTC day",
        parameters=[
            OpenApiParameter("by", str, enum=["strategy", "instrument", "day"], default="day"),
            oas.query("since", {"type": "string", "format": "date"}, "first UTC day, YYYY-MM-DD"),
            oas.query("until", {"type": "string", "format": "date"}, "last UTC day, YYYY-MM-DD"),
            *oas.error_headers(400, *oas.AUTHENTICATED),
        ],
    )
    def get(self, request):
        unknown = set(request.query_params) - {"by", "since", "until"}
        if unknown:
            raise ValidationError({name: ["unknown parameter"] for name in sorted(unknown)})
        by = request.query_params.get("by", "day")
        if by not in ("strategy", "instrument", "day"):
            raise ValidationError({"by": ["must be strategy, instrument or day"]})
        since, until = _day(request.query_params, "since"), _day(request.query_params, "until")
        groups = realized_pnl_by(key=by, strategies=visible_strategies(request.user), since=since, until=until)
        return Response({"by": by, "currency": "USDT", "realized_pnl": groups})
