"""Providers API. Views parse and shape; services and selectors decide."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from dashtam.api.exceptions import ProblemError, RetryAfterError
from dashtam.api.pagination import CursorPagination
from providers import registry, selectors, services
from providers.serializers import (
    AccountFilterSerializer,
    AccountSerializer,
    AuthorizationUrlSerializer,
    CallbackResultSerializer,
    ConnectionCreatedSerializer,
    ConnectionCreateSerializer,
    ConnectionSerializer,
    ConnectionUpdateSerializer,
    ProviderTypeSerializer,
    SyncAcceptedSerializer,
    TokenRefreshResultSerializer,
    TransactionFilterSerializer,
    TransactionSerializer,
    normalise_filters,
)

NO_STORE = {"Cache-Control": "no-store"}
TAG = ["providers"]


class ConnectionPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class TransactionPagination(CursorPagination):
    ordering = ("-date", "-id")


class ProviderTypesApi(APIView):
    pagination_class = None

    @extend_schema(operation_id="provider_types", tags=TAG, summary="Provider types you can connect",
                   responses={200: ProviderTypeSerializer(many=True)})
    def get(self, request):
        data = [{"key": t.key, "name": t.name, "configured": t.configured, "capabilities": list(t.capabilities)}
                for t in registry.provider_types()]
        return Response(ProviderTypeSerializer(data, many=True).data)


class ConnectionListApi(APIView):
    pagination_class = ConnectionPagination

    @extend_schema(operation_id="providers_list", tags=TAG, summary="Your provider connections",
                   responses={200: ConnectionSerializer(many=True)})
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.connection_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(ConnectionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="providers_create", tags=TAG, summary="Start connecting a provider",
        request=ConnectionCreateSerializer,
        responses={201: ConnectionCreatedSerializer,
                   409: OpenApiResponse(description="The alias is taken (CONFLICT).")},
        description="Creates a pending connection. Open `authorization_url` in a browser to consent; the "
                    "provider then redirects to the public callback, which completes the connection.",
    )
    def post(self, request):
        data = ConnectionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        connection, url = services.connection_create(user=request.user, **data.validated_data)
        body = {"id": connection.pk, "provider_key": connection.provider_key, "alias": connection.alias,
                "status": connection.status, "authorization_url": url}
        return Response(ConnectionCreatedSerializer(body).data, status=status.HTTP_201_CREATED, headers=NO_STORE)


class ConnectionDetailApi(APIView):
    @extend_schema(operation_id="providers_retrieve", tags=TAG, summary="One connection",
                   responses={200: ConnectionSerializer})
    def get(self, request, connection_id):
        return Response(ConnectionSerializer(selectors.connection_get(user=request.user,
                                                                      connection_id=connection_id)).data)

    @extend_schema(operation_id="providers_update", tags=TAG, summary="Rename a connection",
                   request=ConnectionUpdateSerializer, responses={
                       200: ConnectionSerializer,
                       409: OpenApiResponse(description="The alias is taken (CONFLICT).")})
    def patch(self, request, connection_id):
        connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        # A partial update, as PATCH is: a body without alias changes nothing.
        data = ConnectionUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "alias" in data.validated_data:
            connection = services.connection_update(connection=connection, alias=data.validated_data["alias"])
        return Response(ConnectionSerializer(connection).data)

    @extend_schema(operation_id="providers_destroy", tags=TAG, summary="Disconnect and delete",
                   responses={204: OpenApiResponse(description="Tokens and synced data destroyed; audit kept.")})
    def delete(self, request, connection_id):
        connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        services.connection_delete(connection=connection)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuthorizationApi(APIView):
    @extend_schema(operation_id="providers_authorization", tags=TAG, request=None,
                   summary="A new authorization URL (re-connect)", responses={200: AuthorizationUrlSerializer})
    def post(self, request, connection_id):
        connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        url = services.oauth_authorization_start(connection=connection)
        return Response({"authorization_url": url}, headers=NO_STORE)


class TokenRefreshApi(APIView):
    @extend_schema(
        operation_id="providers_token_refresh", tags=TAG, request=None,
        summary="Refresh the provider token now", responses={
            200: TokenRefreshResultSerializer,
            409: OpenApiResponse(description="REAUTH_REQUIRED, or CONFLICT when a refresh is running."),
            502: OpenApiResponse(description="The provider failed (PROVIDER_ERROR)."),
            503: OpenApiResponse(description="PROVIDER_UNAVAILABLE (circuit open); see Retry-After."),
        },
    )
    def post(self, request, connection_id):
        connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        result = services.token_refresh(connection_id=connection.pk, force=True)
        if result.status == "refreshed":
            body = {"status": result.connection_status, "expires_at": result.expires_at, "rotation": result.rotation}
            return Response(TokenRefreshResultSerializer(body).data)
        if result.status == "in_progress":
            raise ProblemError("CONFLICT", "A refresh of this connection is already running.")
        if result.status in ("reauth_required", "inactive", "no_token"):
            raise ProblemError("REAUTH_REQUIRED", "Connect this provider again.")
        if result.retry_after is not None:
            raise RetryAfterError("PROVIDER_UNAVAILABLE", "The provider is unavailable. Try again later.",
                                  retry_after=result.retry_after)
        raise ProblemError("PROVIDER_ERROR", "The provider did not renew the token.")


class SyncApi(APIView):
    @extend_schema(operation_id="providers_sync", tags=TAG, request=None, summary="Sync accounts now",
                   responses={202: SyncAcceptedSerializer,
                              409: OpenApiResponse(description="REAUTH_REQUIRED"),
                              503: OpenApiResponse(description="PROVIDER_UNAVAILABLE; see Retry-After.")})
    def post(self, request, connection_id):
        connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        services.connection_sync_request(connection=connection)
        return Response({"status": "queued", "connection_id": str(connection.pk)}, status=status.HTTP_202_ACCEPTED)


def _wants_json(request) -> bool:
    accept = request.META.get("HTTP_ACCEPT", "")
    return "application/json" in accept and "text/html" not in accept


class OAuthCallbackApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def perform_content_negotiation(self, request, force=False):
        # Browsers ask for text/html: they get a redirect, never a 406.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="providers_oauth_callback", tags=TAG, auth=[],
        summary="OAuth redirect target (public; the state is the credential)",
        parameters=[OpenApiParameter("code", OpenApiTypes.STR), OpenApiParameter("state", OpenApiTypes.STR),
                    OpenApiParameter("error", OpenApiTypes.STR)],
        responses={200: CallbackResultSerializer,
                   302: OpenApiResponse(description="Redirect to FRONTEND_URL with ?outcome=&connection_id="),
                   400: OpenApiResponse(description="INVALID_TOKEN: unknown, used, expired or mismatched state."),
                   403: OpenApiResponse(description="PERMISSION_DENIED: consent declined."),
                   502: OpenApiResponse(description="PROVIDER_ERROR: the code exchange failed.")},
        description="Browsers get a 302 to FRONTEND_URL; clients sending `Accept: application/json` get JSON.",
    )
    def get(self, request, provider_key):
        q = request.query_params
        outcome = services.oauth_callback_complete(
            provider_key=provider_key, code=q.get("code", ""), state=q.get("state", ""), error=q.get("error", ""))
        body = {"outcome": outcome.outcome, "connection_id": outcome.connection_id, "detail": outcome.detail}
        if not _wants_json(request):
            query = urlencode({k: v for k, v in (("outcome", outcome.outcome),
                                                 ("connection_id", outcome.connection_id or "")) if v})
            response = HttpResponseRedirect(f"{settings.FRONTEND_URL}{settings.PROVIDER_OAUTH_RESULT_PATH}?{query}")
            response["Cache-Control"] = "no-store"
            return response
        if outcome.ok:
            return Response(CallbackResultSerializer(body).data, headers=NO_STORE)
        extra = {"outcome": outcome.outcome, "connection_id": outcome.connection_id}
        if outcome.outcome == "denied":
            raise ProblemError("PERMISSION_DENIED", outcome.detail, extra=extra)
        if outcome.outcome == "failed":
            raise ProblemError("PROVIDER_ERROR", outcome.detail, extra=extra)
        raise ProblemError("INVALID_TOKEN", outcome.detail, extra=extra)


class AccountListApi(APIView):
    pagination_class = ConnectionPagination

    @extend_schema(operation_id="accounts_list", tags=["accounts"], summary="Your synced accounts",
                   parameters=[AccountFilterSerializer], responses={
                       200: AccountSerializer(many=True),
                       404: OpenApiResponse(description="NOT_FOUND: connection_id is not one of yours.")})
    def get(self, request):
        filters = AccountFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        if f.get("connection_id"):
            selectors.connection_get(user=request.user, connection_id=f["connection_id"])
        qs = selectors.account_list(user=request.user, connection_id=f.get("connection_id"),
                                    account_type=f.get("type", ""), synced_since=f.get("synced_since"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(AccountSerializer(page, many=True).data)


class AccountDetailApi(APIView):
    @extend_schema(operation_id="accounts_retrieve", tags=["accounts"], summary="One account with positions",
                   responses={200: AccountSerializer})
    def get(self, request, account_id):
        return Response(AccountSerializer(selectors.account_get(user=request.user, account_id=account_id)).data)


class AccountTransactionsApi(APIView):
    pagination_class = TransactionPagination

    @extend_schema(operation_id="accounts_transactions", tags=["accounts"], summary="An account's transactions",
                   parameters=[TransactionFilterSerializer], responses={200: TransactionSerializer(many=True)})
    def get(self, request, account_id):
        account = selectors.account_get(user=request.user, account_id=account_id)
        filters = TransactionFilterSerializer(data=normalise_filters(request.query_params))
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        types = [t.strip().upper() for t in f.get("type", "").split(",") if t.strip()] or None
        qs = selectors.transaction_list(account=account, start=f.get("start"), end=f.get("end"), types=types)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(TransactionSerializer(page, many=True).data)
