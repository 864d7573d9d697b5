"""Accounts API. Views parse input, call one service and shape the output."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import serializers as s
from accounts import services
from accounts.mfa.serializers import MfaRequiredSerializer
from dashtam.context import client_ip_for_request

# Every path that can sign someone in answers either the login response or, for an account
# with a second factor, the mfa_required step (accounts.mfa.services.login_next_step).
LOGIN_OR_MFA_REQUIRED = PolymorphicProxySerializer(
    component_name="LoginOrMfaRequired", resource_type_field_name=None,
    serializers=[s.LoginResponseSerializer, MfaRequiredSerializer])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ACCEPTED = {"detail": "If the address can receive email, a message is on its way."}


def _accepted() -> Response:
    return Response(dict(ACCEPTED), status=status.HTTP_202_ACCEPTED)


def login_response(result) -> Response:
    """The one login answer (no-store) of every sign-in path (password, second factor, passkey,
    magic link, unlock link): the tokens of a ``LoginResult``, or the second-factor step's
    mfa_required for an ``MfaRequired``."""
    if not isinstance(result, services.LoginResult):
        body = {"mfa_required": True, "mfa_token": result.mfa_token, "methods": result.methods,
                "expires_in": result.expires_in}
        return Response(body, headers=NO_STORE)
    body = {
        "access": result.access, "refresh": result.refresh, "token_type": "Bearer",
        "expires_in": result.expires_in, "session_id": result.session_id,
        "user": s.UserSerializer(result.user).data,
    }
    return Response(body, headers=NO_STORE)


class PublicApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]


class RegisterApi(PublicApi):
    @extend_schema(
        operation_id="auth_register", tags=["auth"], auth=[],
        summary="Create an account (a verification email follows)",
        request=s.RegisterSerializer, responses={202: s.DetailSerializer},
        description=(
            "Always 202 with the same body, whether or not the address is taken: a new address "
            "gets a verification link, a taken one gets a notice instead. The password policy is "
            "PASSWORD_POLICY's (composition by default); every broken rule is listed."
        ),
    )
    def post(self, request):
        data = s.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_register(**data.validated_data)
        return _accepted()


class VerifyEmailApi(PublicApi):
    @extend_schema(
        operation_id="auth_verify_email", tags=["auth"], auth=[],
        summary="Verify an email address with the token from the email",
        request=s.TokenSerializer,
        responses={200: s.DetailSerializer,
                   400: OpenApiResponse(description="INVALID_TOKEN, or VALIDATION_ERROR."),
                   409: OpenApiResponse(description="CONFLICT: the new address was taken meanwhile.")},
        description="Single-use, valid 24 hours. A bad, expired or used token: 400 INVALID_TOKEN. "
                    "Also completes an email change.",
    )
    def post(self, request):
        data = s.TokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.email_verify(token=data.validated_data["token"])
        return Response({"detail": "Your email address is verified."})


class ResendVerificationApi(PublicApi):
    @extend_schema(
        operation_id="auth_resend_verification", tags=["auth"], auth=[],
        summary="Send a new verification link (earlier links stop working)",
        request=s.EmailSerializer, responses={202: s.DetailSerializer},
        description="Always 202 with the same body.",
    )
    def post(self, request):
        data = s.EmailSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.verification_resend_enqueue(email=data.validated_data["email"])
        return _accepted()


class LoginApi(PublicApi):
    @extend_schema(
        operation_id="auth_login", tags=["auth"], auth=[],
        summary="Log in with email and password",
        request=s.LoginSerializer,
        responses={
            200: LOGIN_OR_MFA_REQUIRED,
            401: OpenApiResponse(description="INVALID_CREDENTIALS: wrong password or unknown address."),
            403: OpenApiResponse(description="EMAIL_NOT_VERIFIED (only after a correct password)."),
        },
        description=(
            "401 INVALID_CREDENTIALS for a wrong password or unknown address; 403 EMAIL_NOT_VERIFIED "
            "only after a correct password; 429 ACCOUNT_LOCKED with Retry-After after "
            "LOCKOUT_FAILURE_LIMIT failures for the address (or LOCKOUT_IP_FAILURE_LIMIT from one IP), "
            "even with the right password, for LOCKOUT_COOLOFF_SECONDS. An account with a second "
            "factor gets {mfa_required: true, mfa_token, methods, expires_in} and no tokens: finish "
            "with POST auth/login/mfa."
        ),
    )
    def post(self, request):
        data = s.LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.login(request=request._request, **data.validated_data)
        return login_response(result)


class MagicLinkEnabled(AllowAny):
    """MAGIC_LINK_ENABLED off: the routes answer 404, as if they did not exist."""

    def has_permission(self, request, view):
        if not settings.MAGIC_LINK_ENABLED:
            raise NotFound()
        return True


class MagicLinkRequestApi(PublicApi):
    permission_classes = [MagicLinkEnabled]

    @extend_schema(
        operation_id="auth_magic_link", tags=["auth"], auth=[],
        summary="Email me a sign-in link (valid 15 minutes, single-use)",
        request=s.EmailSerializer, responses={202: s.DetailSerializer},
        description=(
            "Always 202 with the same body, in the same time, whether or not the address has an "
            "account. A known address gets a link to FRONTEND_URL/magic-link?token=...; a newer "
            "link kills the older ones. 404 when MAGIC_LINK_ENABLED is off."
        ),
    )
    def post(self, request):
        data = s.EmailSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.magic_link_request_enqueue(email=data.validated_data["email"],
                                            requested_ip=client_ip_for_request(request._request))
        return _accepted()


class MagicLinkVerifyApi(PublicApi):
    permission_classes = [MagicLinkEnabled]

    @extend_schema(
        operation_id="auth_magic_link_verify", tags=["auth"], auth=[],
        summary="Sign in with the token from a magic link",
        request=s.TokenSerializer,
        responses={
            200: LOGIN_OR_MFA_REQUIRED,
            400: OpenApiResponse(description="INVALID_TOKEN (unknown, used, replaced or expired), "
                                             "or VALIDATION_ERROR."),
        },
        description=(
            "The login response (or, for an account with a second factor, its mfa_required "
            "answer). Marks the email address verified. A locked account: 429 ACCOUNT_LOCKED with "
            "Retry-After, and the link stays usable once the lock ends."
        ),
    )
    def post(self, request):
        data = s.TokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.magic_link_verify(request=request._request, token=data.validated_data["token"])
        return login_response(result)


class UnlockApi(PublicApi):
    @extend_schema(
        operation_id="auth_unlock", tags=["auth"], auth=[],
        summary="Unlock a locked account with the link from the lockout email, and sign in",
        request=s.TokenSerializer,
        responses={200: LOGIN_OR_MFA_REQUIRED,
                   400: OpenApiResponse(description="INVALID_TOKEN (bad, expired, used or replaced), "
                                                    "or VALIDATION_ERROR.")},
        description=(
            "The \"account locked\" email carries a single-use link to FRONTEND_URL/unlock?token=...; "
            "its token, posted here, ends the account's lock and answers like a successful login "
            "(or, for an account with a second factor, its mfa_required answer). "
            "Valid UNLOCK_TOKEN_MINUTES (15); only the newest link works."
        ),
    )
    def post(self, request):
        data = s.TokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.lockout_unlock(request=request._request, token=data.validated_data["token"])
        return login_response(result)


class RequestPasswordResetApi(PublicApi):
    @extend_schema(
        operation_id="auth_request_password_reset", tags=["auth"], auth=[],
        summary="Email a password reset link (valid 15 minutes)",
        request=s.EmailSerializer, responses={202: s.DetailSerializer},
        description="Always 202 with the same body.",
    )
    def post(self, request):
        data = s.EmailSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_request_enqueue(email=data.validated_data["email"])
        return _accepted()


class ResetPasswordApi(PublicApi):
    @extend_schema(
        operation_id="auth_reset_password", tags=["auth"], auth=[],
        summary="Set a new password with the token from the reset email",
        request=s.ResetPasswordSerializer,
        responses={200: s.DetailSerializer,
                   400: OpenApiResponse(description="INVALID_TOKEN, or VALIDATION_ERROR (password policy).")},
        description="Ends every session, clears the lockout and sends a confirmation email.",
    )
    def post(self, request):
        data = s.ResetPasswordSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_confirm(**data.validated_data)
        return Response({"detail": "Your password was reset. Log in with the new password."})


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="auth_me", tags=["auth"], summary="My profile",
                   responses={200: s.UserSerializer})
    def get(self, request):
        return Response(s.UserSerializer(request.user).data)

    @extend_schema(
        operation_id="auth_me_update", tags=["auth"], summary="Change my names, or start an email change",
        request=s.MeUpdateSerializer, responses={200: s.UserSerializer},
        description=(
            "Only first_name and last_name change here; other fields are ignored. An email change "
            "needs current_password: a link goes to the new address and the change happens when "
            "it is used (the old address is told)."
        ),
    )
    def patch(self, request):
        data = s.MeUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "email" in values:
            services.email_change_request(user=request.user, new_email=values["email"],
                                          current_password=values["current_password"], request=request._request)
        user = services.user_profile_update(
            user=request.user, first_name=values.get("first_name"), last_name=values.get("last_name"),
        )
        return Response(s.UserSerializer(user).data)

    @extend_schema(
        operation_id="auth_me_deactivate", tags=["auth"], summary="Deactivate my account",
        request=s.DeactivateSerializer,
        responses={204: OpenApiResponse(description="Deactivated: sessions ended, provider "
                                                    "connections revoked, audit trail kept.")},
    )
    def delete(self, request):
        data = s.DeactivateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_deactivate_self(user=request.user, password=data.validated_data["password"],
                                      request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChangePasswordApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="auth_change_password", tags=["auth"], summary="Change my password",
        request=s.ChangePasswordSerializer, responses={200: s.DetailSerializer},
        description="Needs the current password. Ends every other session; this one stays.",
    )
    def post(self, request):
        data = s.ChangePasswordSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_change(user=request.user, keep_session_id=request.auth.get("sid"),
                                 request=request._request, **data.validated_data)
        return Response({"detail": "Your password was changed. Your other sessions were ended."})
