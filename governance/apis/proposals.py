import re
import uuid

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from chronosx.api import IdempotencyKeyRequired, check_body_size
from governance import schema as oas
from governance.models import Proposal
from governance.selectors.proposals import agent_bound_to, proposal_as_submitted, proposal_get, proposal_list
from governance.serializers import (
    ProposalInSerializer,
    ProposalSerializer,
    StrictCharField,
    control_character_problem,
)
from governance.services.proposals import proposal_submit, request_hash

IDEMPOTENCY_KEY = re.compile(oas.IDEMPOTENCY_KEY_PATTERN)
POST_ERRORS = (400, 403, 409, 413, 415, *oas.AUTHENTICATED)
LIST_ERRORS = (400, 403, *oas.AUTHENTICATED)
DETAIL_ERRORS = (404, *oas.AUTHENTICATED)


class ProposalFilterSerializer(serializers.Serializer):
    # An empty parameter (`?strategy=&status=`, as a URL template fills it) means no filter.
    strategy = StrictCharField(required=False, max_length=64, allow_blank=True)
    status = serializers.ChoiceField(choices=Proposal.Status.choices, required=False, allow_blank=True)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


class ProposalListCreateApi(APIView):
    @extend_schema(
        request=oas.PROPOSAL_IN,
        parameters=[oas.IDEMPOTENCY_KEY, oas.LOCATION, *oas.error_headers(*POST_ERRORS)],
        responses={
            202: OpenApiResponse(ProposalSerializer, description="accepted: the new proposal"),
            200: OpenApiResponse(ProposalSerializer, description="the same key and body again: the proposal as stored, nothing new"),
            **oas.error_responses(*POST_ERRORS),
        },
        summary="Propose a trade",
    )
    def post(self, request):
        received_at = timezone.now()
        check_body_size(request)
        if request.content_type.split(";")[0].strip().lower() != "application/json":
            raise exceptions.UnsupportedMediaType(request.content_type or "none")
        key = request.headers.get("Idempotency-Key", "")
        if not IDEMPOTENCY_KEY.match(key):
            raise IdempotencyKeyRequired()
        body = request.data
        # The strategy binding is checked before the rest of the body, so an agent
        # learns nothing about a strategy it may not act for (403 either way).
        strategy_slug = body.get("strategy") if isinstance(body, dict) else None
        strategy = None
        if isinstance(strategy_slug, str) and len(strategy_slug) <= 64 and not control_character_problem(strategy_slug):
            strategy = _bound_strategy(request.user, strategy_slug)
        serializer = ProposalInSerializer(data=body, received_at=received_at)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        slug = data.pop("strategy")
        if strategy is None or strategy.slug != slug:
            strategy = _bound_strategy(request.user, slug)
        data["instrument"] = data.pop("symbol")
        proposal, created = proposal_submit(
            agent=request.user,
            strategy=strategy,
            data=data,
            idempotency_key=key,
            body_hash=request_hash(body),
            received_at=received_at,
        )
        proposal = proposal_as_submitted(agent=request.user, proposal=proposal, created=created)
        location = request.build_absolute_uri(f"/api/v1/proposals/{proposal.id}/")
        return Response(ProposalSerializer(proposal).data, status=202 if created else 200, headers={"Location": location})

    @extend_schema(
        parameters=[
            oas.query(
                "strategy",
                {"type": "string", "minLength": 1, "maxLength": 64, "not": {"pattern": oas.CONTROL_CHARACTER}},
                "a strategy slug the agent is bound to (else 403)",
            ),
            oas.query("status", {"type": "string", "enum": Proposal.Status.values}),
            oas.query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "newest first"),
            *oas.error_headers(*LIST_ERRORS),
        ],
        responses={200: ProposalSerializer(many=True), **oas.error_responses(*LIST_ERRORS)},
        summary="List the agent's proposals, newest first",
    )
    def get(self, request):
        params = ProposalFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        strategy = params.validated_data.get("strategy")
        if strategy and agent_bound_to(agent=request.user, strategy_slug=strategy) is None:
            raise exceptions.PermissionDenied(f"this agent may not act for strategy {strategy!r}")
        proposals = proposal_list(agent=request.user, **params.validated_data)
        return Response(ProposalSerializer(proposals, many=True).data)


def proposal_uuid(text: str) -> uuid.UUID:
    """A proposal id from the path; anything but a UUID is an unknown proposal (404)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise exceptions.NotFound(f"no proposal {text}")


def _bound_strategy(agent, slug):
    strategy = agent_bound_to(agent=agent, strategy_slug=slug)
    if strategy is None:
        raise exceptions.PermissionDenied(f"this agent may not act for strategy {slug!r}")
    return strategy


class ProposalDetailApi(APIView):
    @extend_schema(
        parameters=[oas.PROPOSAL_ID, *oas.error_headers(*DETAIL_ERRORS)],
        responses={200: ProposalSerializer, **oas.error_responses(*DETAIL_ERRORS)},
        summary="One proposal",
    )
    def get(self, request, proposal_id):
        proposal_id = proposal_uuid(proposal_id)
        proposal = proposal_get(agent=request.user, proposal_id=proposal_id)
        if proposal is None:
            raise exceptions.NotFound(f"no proposal {proposal_id}")
        return Response(ProposalSerializer(proposal).data)
