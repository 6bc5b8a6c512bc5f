from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.auth import AgentTokenAuthentication
from governance.models import Agent
from ledger.selectors import portfolio_report


class PortfolioApi(APIView):
    authentication_classes = [AgentTokenAuthentication, SessionAuthentication]

    @extend_schema(responses=dict, summary="Realized-only portfolio of the agent's strategies (staff: all)")
    def get(self, request):
        principal = request.user
        strategies = principal.strategies.all() if isinstance(principal, Agent) else None
        if strategies is None and not principal.is_staff:
            strategies = []
        return Response(portfolio_report(strategies=strategies))
