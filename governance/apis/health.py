from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.schema import HealthSerializer, error_responses
from governance.selectors.health import health_report


class HealthApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(
        responses={
            200: OpenApiResponse(HealthSerializer, description="able to accept proposals: `ok` or `degraded`"),
            503: OpenApiResponse(HealthSerializer, description="`down`: the database is away, or too few nodes for a quorum"),
            **error_responses(406),
        },
        summary="Health: 200 when able to accept proposals",
    )
    def get(self, request):
        report = health_report()
        return Response(report, status=503 if report["status"] == "down" else 200)
