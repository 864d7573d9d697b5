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
    OAuthCompleteSerializer,
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
                    "provider then redirects to the public callback, which hands `state` and `code` to the "
                    "front end; `POST providers/oauth/{provider_key}/complete` (as this user) connects.",
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
        summary="Refresh the provider token now",
        description="A token obtained less than PROVIDER_TOKEN_FRESH_SECONDS ago is answered from the stored "
                    "state (`refreshed: false`) without calling the provider. Limited per user "
                    "(rate-limit rule `provider_refresh`).", responses={
            200: TokenRefreshResultSerializer,
            409: OpenApiResponse(description="REAUTH_REQUIRED, or CONFLICT when a refresh is running."),
            502: OpenApiResponse(description="The provider failed (PROVIDER_ERROR)."),
            503: OpenApiResponse(description="PROVIDER_UNAVAILABLE (circuit open); see Retry-After."),
        },
    )
    def post(self, request, connection_id):
        connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        result = services.token_refresh(connection_id=connection.pk, force=True, fresh_ok=True)
        if result.status in ("refreshed", "fresh"):
            refreshed = result.status == "refreshed"
            body = {"status": result.connection_status, "expires_at": result.expires_at,
                    "rotation": result.rotation if refreshed else "same_token_returned", "refreshed": refreshed}
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
                   description="202 with the sync job. While one is queued or running, or shortly after one "
                               "completed (PROVIDER_SYNC_COOLDOWN_SECONDS), that job is the answer "
                               "(`created: false`) and nothing is queued. Limited per user (rule `provider_sync`).",
                   responses={202: SyncAcceptedSerializer,
                              409: OpenApiResponse(description="REAUTH_REQUIRED"),
                              503: OpenApiResponse(description="PROVIDER_UNAVAILABLE; see Retry-After.")})
    def post(self, request, connection_id):
        connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        job = services.connection_sync_request(connection=connection)
        body = {"status": job.status, "connection_id": connection.pk, "job_id": job.job_id, "created": job.created,
                "requested_at": job.requested_at, "last_sync_at": job.last_sync_at}
        return Response(SyncAcceptedSerializer(body).data, status=status.HTTP_202_ACCEPTED)


# What the public callback passes on; longer values are cut (no provider sends more).
_CALLBACK_LIMITS = {"state": 512, "code": 4096, "error": 128}


class OAuthCallbackApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def perform_content_negotiation(self, request, force=False):
        # Browsers ask for text/html: they get a redirect, never a 406.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="providers_oauth_callback", tags=TAG, auth=[],
        summary="OAuth redirect target (public): hands the result to the front end",
        parameters=[OpenApiParameter("code", OpenApiTypes.STR), OpenApiParameter("state", OpenApiTypes.STR),
                    OpenApiParameter("error", OpenApiTypes.STR)],
        responses={302: OpenApiResponse(
            description="Redirect to FRONTEND_URL + PROVIDER_OAUTH_RESULT_PATH with `provider`, `state` and "
                        "`code` (or `error`); `Cache-Control: no-store`, `Referrer-Policy: no-referrer`.")},
        description="Never exchanges the code and never spends the state: the signed-in front end does, with "
                    "`POST providers/oauth/{provider_key}/complete`, so an authorization started by someone "
                    "else can never connect your brokerage to their connection.",
    )
    def get(self, request, provider_key):
        q = request.query_params
        params = {"provider": provider_key, "state": q.get("state", "")[:_CALLBACK_LIMITS["state"]]}
        if q.get("error"):
            params["error"] = q["error"][:_CALLBACK_LIMITS["error"]]
        else:
            params["code"] = q.get("code", "")[:_CALLBACK_LIMITS["code"]]
        response = HttpResponseRedirect(
            f"{settings.FRONTEND_URL}{settings.PROVIDER_OAUTH_RESULT_PATH}?{urlencode(params)}")
        # The URL carries a live authorization code: never cached, never sent on as a Referer.
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response


class OAuthCompleteApi(APIView):
    @extend_schema(
        operation_id="providers_oauth_complete", tags=TAG, request=OAuthCompleteSerializer,
        summary="Complete an authorization (as the user who started it)",
        responses={200: CallbackResultSerializer,
                   400: OpenApiResponse(description="INVALID_TOKEN: unknown, used, expired or mismatched state, "
                                                    "or a state another user started (it is spent)."),
                   403: OpenApiResponse(description="PERMISSION_DENIED: consent declined (error=access_denied)."),
                   502: OpenApiResponse(description="PROVIDER_ERROR: the code exchange failed.")},
        description="Send the `state` and `code` (or `error`) that the callback passed to the front end. The "
                    "state is single-use and bound to the user who started the flow.",
    )
    def post(self, request, provider_key):
        data = OAuthCompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = services.oauth_authorization_complete(user=request.user, provider_key=provider_key,
                                                        **data.validated_data)
        body = {"outcome": outcome.outcome, "connection_id": outcome.connection_id, "detail": outcome.detail}
        if outcome.ok:
            return Response(CallbackResultSerializer(body).data, headers=NO_STORE)
        extra = {"outcome": outcome.outcome, "connection_id": outcome.connection_id}
        if outcome.outcome == "denied":
            raise ProblemError("PERMISSION_DENIED", outcome.detail, extra=extra, headers=NO_STORE)
        if outcome.outcome == "failed":
            raise ProblemError("PROVIDER_ERROR", outcome.detail, extra=extra, headers=NO_STORE)
        raise ProblemError("INVALID_TOKEN", outcome.detail, extra=extra, headers=NO_STORE)


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
