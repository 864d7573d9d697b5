"""Sessions API: refresh, logout, list and revoke. Views parse and shape; services decide."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from dashtam.api.exceptions import ProblemError
from sessions_mgmt import selectors, services
from sessions_mgmt.serializers import (
    LogoutRequestSerializer,
    RefreshRequestSerializer,
    RefreshResponseSerializer,
    RevokedCountSerializer,
    SessionSerializer,
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _current_session_id(request) -> str:
    return str(request.auth["sid"])


class RefreshApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="auth_refresh", tags=["auth"], auth=[],
        summary="Exchange a refresh token for a new pair (always rotates)",
        request=RefreshRequestSerializer,
        responses={200: RefreshResponseSerializer,
                   401: OpenApiResponse(description="TOKEN_INVALID (unknown or expired refresh token), "
                                                    "TOKEN_REUSED, or SESSION_REVOKED.")},
        description=(
            "The presented refresh token dies the moment the new pair is issued. Presenting an "
            "already-rotated refresh token again ends the whole session (401 TOKEN_REUSED)."
        ),
    )
    def post(self, request):
        data = RefreshRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.session_refresh(refresh=data.validated_data["refresh"])
        body = {"access": issued.access, "refresh": issued.refresh, "expires_in": issued.expires_in}
        return Response(body, status=status.HTTP_200_OK, headers=NO_STORE)


class LogoutApi(APIView):
    @extend_schema(
        operation_id="auth_logout", tags=["auth"],
        summary="End the current session",
        request=LogoutRequestSerializer,
        responses={204: OpenApiResponse(description="The session's refresh and access tokens no longer work.")},
    )
    def post(self, request):
        data = LogoutRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.session_logout(
            session_id=_current_session_id(request), refresh=data.validated_data["refresh"], user=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT, headers=NO_STORE)


class SessionListApi(APIView):
    @extend_schema(
        operation_id="sessions_list", tags=["sessions"],
        summary="List my active sessions, newest activity first",
        responses={200: SessionSerializer(many=True)},
    )
    def get(self, request):
        sessions = selectors.sessions_active_for_user(user=request.user)
        out = SessionSerializer(sessions, many=True, context={"current_session_id": _current_session_id(request)})
        return Response(out.data)


class SessionDetailApi(APIView):
    @extend_schema(
        operation_id="sessions_revoke", tags=["sessions"],
        summary="End one of my other sessions",
        request=None,
        responses={204: OpenApiResponse(description="The session was ended (or had already ended)."),
                   400: OpenApiResponse(description="CANNOT_REVOKE_CURRENT_SESSION (use logout), "
                                                    "or VALIDATION_ERROR.")},
    )
    def delete(self, request, session_id):
        if str(session_id) == _current_session_id(request):
            raise ProblemError(
                "CANNOT_REVOKE_CURRENT_SESSION",
                "Use logout to end the session you are using.",
            )
        session = selectors.session_get_for_user(user=request.user, session_id=session_id)
        if session is None:
            raise ProblemError("NOT_FOUND", "No such session.")
        services.session_revoke(session=session, reason="user_revoked", actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionOthersApi(APIView):
    @extend_schema(
        operation_id="sessions_revoke_others", tags=["sessions"],
        summary="End every session except the current one",
        request=None,
        responses={200: RevokedCountSerializer},
    )
    def delete(self, request):
        count = services.sessions_revoke_all(
            user=request.user, reason="user_revoked_others",
            keep_session_id=_current_session_id(request), actor=request.user,
        )
        return Response({"revoked": count})


class SessionAllApi(APIView):
    @extend_schema(
        operation_id="sessions_revoke_all", tags=["sessions"],
        summary="End every session, the current one included",
        request=None,
        responses={200: RevokedCountSerializer},
    )
    def delete(self, request):
        count = services.sessions_revoke_all(user=request.user, reason="user_revoked_all", actor=request.user)
        return Response({"revoked": count})
