from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.selectors.health import health_report


class HealthApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(responses={200: dict, 503: dict}, summary="Health: 200 when able to accept proposals")
    def get(self, request):
        report = health_report()
        return Response(report, status=503 if report["status"] == "down" else 200)
