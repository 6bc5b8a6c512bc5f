"""What an outside verifier needs: the nodes' public keys, and a proposal's signed receipt."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import schema as oas
from governance.apis.proposals import proposal_uuid
from governance.models import NodeKey
from governance.selectors.receipts import proposal_receipt

RECEIPT_ERRORS = (404, *oas.AUTHENTICATED)


class NodeKeySerializer(serializers.ModelSerializer):
    public_key = serializers.CharField(help_text="base64, the 32 raw bytes of an Ed25519 public key")

    class Meta:
        model = NodeKey
        fields = ["node", "key_id", "public_key", "active"]


class NodeKeysApi(APIView):
    """Public keys are public: anyone may fetch them to verify votes and receipts."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(
        responses={200: NodeKeySerializer(many=True), **oas.error_responses(406)},
        summary="The MPC nodes' registered public keys, retired ones included (they still verify what they signed)",
    )
    def get(self, request):
        return Response(NodeKeySerializer(NodeKey.objects.order_by("node", "created_at", "key_id"), many=True).data)


class ReceiptApi(APIView):
    @extend_schema(
        parameters=[oas.PROPOSAL_ID, *oas.error_headers(*RECEIPT_ERRORS)],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="the decision, its digests and every verifying vote"),
            **oas.error_responses(*RECEIPT_ERRORS),
        },
        summary="A signed decision receipt, verifiable offline with the node keys (404 until the quorum is met)",
    )
    def get(self, request, proposal_id):
        proposal_id = proposal_uuid(proposal_id)
        receipt = proposal_receipt(agent=request.user, proposal_id=proposal_id)
        if receipt is None:
            raise exceptions.NotFound(f"no receipt for proposal {proposal_id}: unknown, or its quorum is not met")
        return Response(receipt)
