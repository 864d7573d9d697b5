"""Passkeys API (mounted under /api/v1/auth/). Views parse input, call a service, shape output."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import NO_STORE, PublicApi, login_response
from accounts.passkeys import selectors, services
from accounts.passkeys import serializers as s
from accounts.serializers import LoginResponseSerializer

OPTIONS_HELP = ("Pass the JSON to the browser (PublicKeyCredential.parseCreationOptionsFromJSON / "
                "parseRequestOptionsFromJSON). The challenge lives server-side for "
                "WEBAUTHN_CHALLENGE_SECONDS (at most 5 minutes) and works once.")


class RegistrationOptionsApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="auth_passkeys_registration_options", tags=["passkeys"],
                   summary="Options to create a passkey (PublicKeyCredentialCreationOptions)",
                   request=None, responses={200: OpenApiTypes.OBJECT}, description=OPTIONS_HELP)
    def post(self, request):
        return Response(services.passkey_registration_options(user=request.user), headers=NO_STORE)


class RegistrationApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="auth_passkeys_register", tags=["passkeys"], summary="Register a passkey",
        request=s.RegistrationSerializer,
        responses={201: s.PasskeySerializer,
                   400: OpenApiResponse(description="VALIDATION_ERROR: the response did not verify (origin, "
                                                    "RP ID, challenge expired or used) or the name is invalid."),
                   409: OpenApiResponse(description="CONFLICT: already registered, or too many passkeys.")},
        description="`credential` is the PublicKeyCredential's toJSON(); `name` at most 64 characters. "
                    "The owner is emailed.",
    )
    def post(self, request):
        data = s.RegistrationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        passkey = services.passkey_register(user=request.user, credential=data.validated_data["credential"],
                                            name=data.validated_data.get("name"))
        return Response(s.PasskeySerializer(passkey).data, status=status.HTTP_201_CREATED)


class PasskeyListApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="auth_passkeys_list", tags=["passkeys"], summary="My passkeys",
                   responses={200: s.PasskeySerializer(many=True)})
    def get(self, request):
        return Response(s.PasskeySerializer(selectors.passkeys_of(user=request.user), many=True).data)


class PasskeyDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="auth_passkeys_rename", tags=["passkeys"], summary="Rename a passkey",
                   request=s.RenameSerializer,
                   responses={200: s.PasskeySerializer, 404: OpenApiResponse(description="NOT_FOUND")})
    def patch(self, request, passkey_id):
        data = s.RenameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        passkey = services.passkey_rename(user=request.user, passkey_id=passkey_id, name=data.validated_data["name"])
        return Response(s.PasskeySerializer(passkey).data)

    @extend_schema(
        operation_id="auth_passkeys_delete", tags=["passkeys"], summary="Delete a passkey",
        request=s.DeleteSerializer,
        responses={204: OpenApiResponse(description="Deleted; the owner is emailed."),
                   400: OpenApiResponse(description="VALIDATION_ERROR: wrong or missing password."),
                   404: OpenApiResponse(description="NOT_FOUND: not one of your passkeys.")},
        description="Needs `password`; an account without a password confirms with `passkey`, a fresh "
                    "assertion (options from POST auth/passkeys/authentication/options).",
    )
    def delete(self, request, passkey_id):
        data = s.DeleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.passkey_delete(user=request.user, passkey_id=passkey_id,
                                password=data.validated_data.get("password"),
                                assertion=data.validated_data.get("passkey"), request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuthenticationOptionsApi(PublicApi):
    @extend_schema(
        operation_id="auth_passkeys_authentication_options", tags=["passkeys"], auth=[],
        summary="Options to sign in with a passkey (PublicKeyCredentialRequestOptions)",
        request=s.AuthenticationOptionsSerializer,
        responses={200: OpenApiTypes.OBJECT,
                   401: OpenApiResponse(description="TOKEN_INVALID: a dead mfa_token."),
                   409: OpenApiResponse(description="CONFLICT: the mfa_token's account has no passkey.")},
        description="`{}`: usernameless (discoverable passkeys). `{email}`: that account's passkeys (the "
                    "answer looks the same for an unknown address). `{mfa_token}`: the second step of a "
                    "password login, finished with POST auth/login/mfa {mfa_token, passkey}. " + OPTIONS_HELP,
    )
    def post(self, request):
        data = s.AuthenticationOptionsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "mfa_token" in values:
            options = services.passkey_mfa_options(request=request._request, mfa_token=values["mfa_token"])
        else:
            options = services.passkey_authentication_options(email=values.get("email"))
        return Response(options, headers=NO_STORE)


class AuthenticationApi(PublicApi):
    @extend_schema(
        operation_id="auth_passkeys_authenticate", tags=["passkeys"], auth=[],
        summary="Sign in with a passkey",
        request=s.AuthenticationSerializer,
        responses={200: LoginResponseSerializer,
                   401: OpenApiResponse(description="TOKEN_INVALID (challenge expired or used; sign counter "
                                                    "went backwards) or INVALID_CREDENTIALS (did not verify)."),
                   403: OpenApiResponse(description="EMAIL_NOT_VERIFIED"),
                   429: OpenApiResponse(description="ACCOUNT_LOCKED (+Retry-After), or RATE_LIMITED.")},
        description="A passkey alone signs in (phishing-resistant: no second step). The session's "
                    "auth_methods are [\"passkey\"].",
    )
    def post(self, request):
        data = s.AuthenticationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.passkey_login(request=request._request, credential=data.validated_data["credential"])
        return login_response(result)
