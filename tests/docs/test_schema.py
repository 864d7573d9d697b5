"""The OpenAPI schema documents every answer, and request schemas state the real constraints.

Statuses are checked against what the live stack really answers (through the test client),
so a documented status that never happens, or an undocumented one, fails here too.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from dashtam.api.problems import CATALOGUE
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(schema, prefix="/api/"):
    for route, item in schema["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op and route.startswith(prefix):
                yield route, method, op


def example_codes(response) -> set[str]:
    return set(response["content"]["application/problem+json"]["examples"])


def bearer(user) -> str:
    from django.test import RequestFactory

    from sessions_mgmt.services import session_start

    request = RequestFactory().post("/api/v1/auth/login", HTTP_USER_AGENT="pytest", REMOTE_ADDR="203.0.113.9")
    return f"Bearer {session_start(user=user, request=request).access}"


def test_every_api_operation_documents_its_problem_answers(schema):
    ops = list(operations(schema))
    assert len(ops) >= 30
    for route, method, op in ops:
        responses = op["responses"]
        where = (method, route)
        for status in ("400", "429", "500", "503"):
            assert status in responses, where + (status,)
        for status, response in responses.items():
            assert "X-Request-ID" in response["headers"], where + (status,)
            if status[0] not in "45":
                continue
            body = response["content"]
            assert set(body) == {"application/problem+json"}, where + (status,)
            assert body["application/problem+json"]["schema"] == PROBLEM_REF
            codes = example_codes(response)
            assert codes, where + (status,)
            for code in codes:
                assert CATALOGUE[code][0] == int(status), where + (status, code)
                assert code in response["description"], where + (status, code)
                assert body["application/problem+json"]["examples"][code]["value"]["code"] == code
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        assert {"RATE_LIMITED"} <= example_codes(responses["429"])
        assert "SERVICE_UNAVAILABLE" in example_codes(responses["503"])
        assert "Retry-After" in responses["503"]["headers"]
        if op.get("security") and any(op["security"]):
            assert {"NOT_AUTHENTICATED", "TOKEN_INVALID", "SESSION_REVOKED"} <= example_codes(responses["401"]), where
        if "{" in route:
            assert example_codes(responses["404"]) == {"NOT_FOUND"}, where
        if "requestBody" in op:
            assert example_codes(responses["413"]) == {"PAYLOAD_TOO_LARGE"}, where
            assert example_codes(responses["415"]) == {"UNSUPPORTED_MEDIA_TYPE"}, where
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["properties"]["code"]["enum"]) == set(CATALOGUE)


def test_operation_specific_answers_are_documented(schema):
    paths = schema["paths"]
    refresh = paths["/api/v1/auth/refresh"]["post"]["responses"]
    assert example_codes(refresh["401"]) == {"TOKEN_INVALID", "TOKEN_REUSED", "SESSION_REVOKED"}
    login = paths["/api/v1/auth/login"]["post"]["responses"]
    assert example_codes(login["401"]) == {"INVALID_CREDENTIALS"}
    assert example_codes(login["403"]) == {"EMAIL_NOT_VERIFIED"}
    assert example_codes(login["429"]) == {"ACCOUNT_LOCKED", "RATE_LIMITED"}
    assert example_codes(paths["/api/v1/admin/audit/events"]["get"]["responses"]["403"]) == {"PERMISSION_DENIED"}
    revoke = paths["/api/v1/auth/sessions/{session_id}"]["delete"]["responses"]
    assert "CANNOT_REVOKE_CURRENT_SESSION" in example_codes(revoke["400"])
    rename = paths["/api/v1/providers/{connection_id}"]["patch"]["responses"]
    assert example_codes(rename["409"]) == {"CONFLICT"}
    refresh_token = paths["/api/v1/providers/{connection_id}/token-refresh"]["post"]["responses"]
    assert example_codes(refresh_token["409"]) == {"REAUTH_REQUIRED", "CONFLICT"}
    assert example_codes(refresh_token["503"]) == {"PROVIDER_UNAVAILABLE", "SERVICE_UNAVAILABLE"}
    assert "404" in paths["/api/v1/accounts"]["get"]["responses"]
    # Public operations do not claim a 401 they never send.
    for route in ("/api/v1/auth/register", "/api/v1/auth/request-password-reset"):
        assert "401" not in paths[route]["post"]["responses"]
    # DELETE auth/me reads {password}: the schema says so.
    body = paths["/api/v1/auth/me"]["delete"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/DeactivateRequest"}


def test_documented_statuses_are_what_the_stack_answers(client, schema, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    user = UserFactory(password=PASSWORD)
    auth = {"HTTP_AUTHORIZATION": bearer(user)}
    paths = schema["paths"]
    cases = [
        ("get", f"/api/v1/providers/{uuid.uuid4()}", {}, "/api/v1/providers/{connection_id}", 404, "NOT_FOUND"),
        ("get", f"/api/v1/accounts?connection_id={uuid.uuid4()}", {}, "/api/v1/accounts", 404, "NOT_FOUND"),
        ("delete", f"/api/v1/auth/sessions/{uuid.uuid4()}", {}, "/api/v1/auth/sessions/{session_id}", 404,
         "NOT_FOUND"),
        ("get", "/api/v1/auth/me", {"HTTP_AUTHORIZATION": "Bearer nope"}, "/api/v1/auth/me", 401, "TOKEN_INVALID"),
        ("get", "/api/v1/admin/audit/events", {}, "/api/v1/admin/audit/events", 403, "PERMISSION_DENIED"),
        ("get", "/api/v1/providers?page_size=zero", {}, "/api/v1/providers", 400, "VALIDATION_ERROR"),
    ]
    for method, url, extra, route, status, code in cases:
        headers = {**auth, **extra}
        response = getattr(client, method)(url, **headers)
        assert response.status_code == status, (url, response.content)
        assert response["Content-Type"].startswith("application/problem+json")
        assert response.json()["code"] == code
        assert code in example_codes(paths[route][method]["responses"][str(status)]), (route, status, code)

    refresh = client.post("/api/v1/auth/refresh", {"refresh": "not-a-token"}, content_type="application/json")
    assert refresh.status_code == 401 and refresh.json()["code"] == "TOKEN_INVALID"
    wrong_type = client.post("/api/v1/auth/login", "email=a@b.c", content_type="text/plain")
    assert wrong_type.status_code == 415 and wrong_type.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    too_big = client.post("/api/v1/auth/login", {"email": "a@b.c", "password": "x" * 4096},
                          content_type="application/json")
    assert too_big.status_code == 413 and too_big.json()["code"] == "PAYLOAD_TOO_LARGE"
    for status in ("401", "413", "415"):
        assert status in paths["/api/v1/auth/refresh"]["post"]["responses"]


class _WidgetSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=10)


class _WidgetApi(APIView):
    """Stands in for an endpoint added later (MFA, OAuth complete, unlock...)."""

    def post(self, request, widget_id):
        return Response({})


@pytest.mark.slow
def test_a_new_endpoint_is_documented_without_any_schema_work():
    from drf_spectacular.generators import SchemaGenerator

    from dashtam.urls import urlpatterns

    patterns = [*urlpatterns, path("api/v1/widgets/<uuid:widget_id>/spin", _WidgetApi.as_view())]
    generated = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    responses = generated["paths"]["/api/v1/widgets/{widget_id}/spin"]["post"]["responses"]
    assert {"400", "401", "404", "429", "500", "503"} <= set(responses)
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["404"]["content"]["application/problem+json"]["schema"] == PROBLEM_REF


def _password_schema(schema, component="RegisterRequest", field="password"):
    return schema["components"]["schemas"][component]["properties"][field]


@pytest.mark.parametrize("value", [
    "Abcdef1!", "Passw0rd ok", "Z9z ", "abcdefgh1!", "ABCDEFGH1!", "Abcdefgh!!", "Abcdefgh12", "Äbcdefg1!",
    "aB3$" * 40,
])
def test_the_password_schema_agrees_with_the_policy(schema, value):
    from django.core.exceptions import ValidationError

    from accounts.validators import PolicyPasswordValidator

    prop = _password_schema(schema)
    by_schema = (prop["minLength"] <= len(value) <= prop["maxLength"]
                 and re.search(prop["pattern"], value) is not None)
    try:
        PolicyPasswordValidator().validate(value)
        by_policy = True
    except ValidationError:
        by_policy = False
    if by_schema:
        assert by_policy, value  # anything the schema allows, the policy accepts
    elif value.isascii():
        assert not by_policy, value  # for ASCII the two say the same
    for component, field in (("ResetPasswordRequest", "new_password"), ("ChangePasswordRequest", "new_password")):
        assert _password_schema(schema, component, field) == prop


@pytest.mark.slow
def test_the_password_schema_follows_the_policy_setting(client, settings):
    settings.PASSWORD_POLICY = "nist"
    prop = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]["RegisterRequest"][
        "properties"]["password"]
    assert prop["minLength"] == 15 and "pattern" not in prop


def test_request_schemas_state_tokens_provider_keys_and_filters(schema):
    from providers import registry

    components = schema["components"]["schemas"]
    token = components["TokenRequest"]["properties"]["token"]
    assert token["pattern"] == "^[A-Za-z0-9_-]+$" and token["maxLength"] == 128
    assert set(components["ProviderKeyEnum"]["enum"]) == {t.key for t in registry.provider_types()}
    params = {p["name"]: p for p in schema["paths"]["/api/v1/accounts/{account_id}/transactions"]["get"]["parameters"]}
    assert params["start"]["schema"]["anyOf"] == [{"format": "date"}, {"format": "date-time"}]
    assert "format" not in params["start"]["schema"]
    assert params["page_size"]["schema"] == {"type": "integer", "minimum": 1}
    assert params["type"]["allowEmptyValue"] is True
    audit = {p["name"]: p for p in schema["paths"]["/api/v1/admin/audit/events"]["get"]["parameters"]}
    assert audit["ip"]["schema"]["anyOf"] == [{"format": "ipv4"}, {"format": "ipv6"}]
    assert audit["until"]["schema"]["anyOf"] == [{"format": "date"}, {"format": "date-time"}]


@pytest.mark.slow
def test_bodies_the_schema_allows_are_accepted_and_the_others_refused(client):
    user = UserFactory(password=PASSWORD)
    auth = {"HTTP_AUTHORIZATION": bearer(user)}
    unknown = client.post("/api/v1/providers", {"provider_key": "nope"}, content_type="application/json", **auth)
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == {"provider_key": ["Unknown provider."]}
    created = client.post("/api/v1/providers", {"provider_key": "sandbox", "alias": "Play"},
                          content_type="application/json", **auth)
    assert created.status_code == 201, created.content
    url = f"/api/v1/providers/{created.json()['id']}"
    assert client.patch(url, {"alias": 0}, content_type="application/json", **auth).status_code == 400
    assert client.patch(url, {"alias": "   "}, content_type="application/json", **auth).status_code == 400
    unchanged = client.patch(url, {}, content_type="application/json", **auth)
    assert unchanged.status_code == 200 and unchanged.json()["alias"] == "Play"
    renamed = client.patch(url, {"alias": "Renamed"}, content_type="application/json", **auth)
    assert renamed.status_code == 200 and renamed.json()["alias"] == "Renamed"

    bad_token = client.post("/api/v1/auth/verify-email", {"token": "has spaces!"}, content_type="application/json")
    assert bad_token.status_code == 400 and "token" in bad_token.json()["errors"]
    unknown_token = client.post("/api/v1/auth/verify-email", {"token": "abc"}, content_type="application/json")
    assert unknown_token.status_code == 400 and unknown_token.json()["code"] == "INVALID_TOKEN"


def test_page_size_is_checked_not_silently_replaced(client):
    user = UserFactory(password=PASSWORD)
    auth = {"HTTP_AUTHORIZATION": bearer(user)}
    for bad in ("0", "-1", "abc", "1.5", " 5"):
        response = client.get("/api/v1/providers", {"page_size": bad}, **auth)
        assert response.status_code == 400, bad
        assert "page_size" in response.json()["errors"]
    for fine in ("", "1", "5000"):
        assert client.get("/api/v1/providers", {"page_size": fine}, **auth).status_code == 200, fine
    # An empty optional filter is no filter (allowEmptyValue in the schema).
    assert client.get("/api/v1/accounts", {"type": "", "connection_id": ""}, **auth).status_code == 200
