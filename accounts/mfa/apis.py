"""Second-factor API: the login step, enrolment, recovery codes. Views parse, call one service, shape."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import NO_STORE, PublicApi, login_response
from accounts.mfa import serializers as s
from accounts.mfa import services
from accounts.serializers import LoginResponseSerializer

WRONG_CODE = OpenApiResponse(description="INVALID_MFA_CODE: the code is wrong, malformed, expired or replayed.")
WRONG_PASSWORD = OpenApiResponse(description="VALIDATION_ERROR: the password is incorrect (as change-password).")


def _sid(request):
    return request.auth.get("sid") if request.auth is not None else None


class MfaLoginApi(PublicApi):
    @extend_schema(
        operation_id="auth_login_mfa", tags=["auth"], auth=[],
        summary="Finish a login with a second factor (TOTP, recovery code or passkey)",
        request=s.MfaLoginSerializer,
        responses={200: LoginResponseSerializer, 401: WRONG_CODE,
                   429: OpenApiResponse(description="ACCOUNT_LOCKED (+Retry-After), or RATE_LIMITED.")},
        description=(
            "Exchanges the mfa_token from POST auth/login and a 6-digit TOTP code (or a recovery code; "
            "dashes and case are ignored) for the normal login response. Wrong, malformed or replayed "
            "code: 401 INVALID_MFA_CODE, counted toward the account's lockout. An expired, used, or "
            "dead mfa_token (5 wrong codes), or one presented by another client: 401 TOKEN_INVALID. "
            "Or {mfa_token, passkey}: a passkey assertion answering POST auth/passkeys/authentication/options "
            "{mfa_token}; one that does not verify is a wrong code, a sign counter that went backwards is "
            "401 TOKEN_INVALID."
        ),
    )
    def post(self, request):
        data = s.MfaLoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "passkey" in values:
            from accounts.passkeys.services import passkey_mfa_verify

            result = passkey_mfa_verify(request=request._request, mfa_token=values["mfa_token"],
                                        credential=values["passkey"])
        else:
            result = services.login_mfa_verify(request=request._request, mfa_token=values["mfa_token"],
                                               code=values["code"])
        return login_response(result)


class MfaStatusApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="auth_mfa", tags=["auth"], summary="My second factors",
                   responses={200: s.MfaStatusSerializer})
    def get(self, request):
        return Response(s.MfaStatusSerializer(services.mfa_status(user=request.user)).data)


class TotpApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="auth_mfa_totp_enrol", tags=["auth"], summary="Start enrolling an authenticator app",
        request=s.PasswordSerializer, responses={200: s.TotpEnrolResponseSerializer, 400: WRONG_PASSWORD},
        description=(
            "Returns a new secret, its otpauth:// URI and a QR code (inline SVG). Nothing changes until "
            "POST auth/mfa/totp/confirm; enrolling again replaces the pending secret, and a confirmed "
            "authenticator keeps working until the new one is confirmed."
        ),
    )
    def post(self, request):
        data = s.PasswordSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        body = services.totp_enrol_start(user=request.user, password=data.validated_data["password"],
                                         request=request._request)
        return Response(body, headers=NO_STORE)

    @extend_schema(
        operation_id="auth_mfa_totp_disable", tags=["auth"], summary="Turn two-step verification off",
        request=s.TotpDisableSerializer,
        responses={204: OpenApiResponse(description="Off: authenticator and recovery codes removed."),
                   400: WRONG_PASSWORD, 401: WRONG_CODE,
                   409: OpenApiResponse(description="CONFLICT: two-step verification is not on.")},
        description="Needs the password and a current code. end_other_sessions: true ends every other session.",
    )
    def delete(self, request):
        data = s.TotpDisableSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.totp_disable(user=request.user, keep_session_id=_sid(request), request=request._request,
                              **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TotpConfirmApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="auth_mfa_totp_confirm", tags=["auth"], summary="Confirm the authenticator app with a code",
        request=s.TotpConfirmSerializer,
        responses={200: s.RecoveryCodesSerializer, 401: WRONG_CODE,
                   409: OpenApiResponse(description="CONFLICT: no pending authenticator.")},
        description=(
            "Turns two-step verification on and returns 10 recovery codes, shown once. "
            "end_other_sessions: true ends every other session."
        ),
    )
    def post(self, request):
        data = s.TotpConfirmSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        codes = services.totp_enrol_confirm(user=request.user, keep_session_id=_sid(request),
                                            **data.validated_data)
        return Response({"recovery_codes": codes}, headers=NO_STORE)


class RecoveryCodesApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="auth_mfa_recovery_codes", tags=["auth"], summary="Replace my recovery codes",
        request=s.PasswordSerializer,
        responses={200: s.RecoveryCodesSerializer, 400: WRONG_PASSWORD,
                   409: OpenApiResponse(description="CONFLICT: two-step verification is not on.")},
        description="Needs the password. The old codes stop working; the new ones are shown once.",
    )
    def post(self, request):
        data = s.PasswordSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        codes = services.recovery_codes_regenerate(user=request.user, password=data.validated_data["password"],
                                                   request=request._request)
        return Response({"recovery_codes": codes}, headers=NO_STORE)
