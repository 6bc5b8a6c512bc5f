from datetime import date

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

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

    @extend_schema(responses=dict, summary="Realized-only portfolio of the agent's strategies (staff: all)")
    def get(self, request):
        ruleset = ruleset_current()
        mode = ruleset.mode if ruleset else Mode.ALPHA
        return Response(portfolio_report(strategies=visible_strategies(request.user), mode=mode))


def _day(params, name):
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError({name: ["must be a date, YYYY-MM-DD"]})


class RealizedPnlApi(APIView):
    authentication_classes = [AgentTokenAuthentication, SessionAuthentication]

    @extend_schema(
        responses=dict,
        summary="Realized PnL net of fees (FIFO), grouped by strategy, instrument or UTC day",
        parameters=[
            OpenApiParameter("by", str, enum=["strategy", "instrument", "day"], default="day"),
            OpenApiParameter("since", str, description="first UTC day, YYYY-MM-DD"),
            OpenApiParameter("until", str, description="last UTC day, YYYY-MM-DD"),
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
