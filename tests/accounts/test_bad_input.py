"""Every bad input is a problem+json 400 (or 415) naming the field."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db
PUBLIC = {
    "/api/v1/auth/register": {"email": "ok@example.com", "password": "Correct-Horse-9-Battery"},
    "/api/v1/auth/login": {"email": "ok@example.com", "password": "Correct-Horse-9-Battery"},
    "/api/v1/auth/verify-email": {"token": "abc"},
    "/api/v1/auth/resend-verification": {"email": "ok@example.com"},
    "/api/v1/auth/request-password-reset": {"email": "ok@example.com"},
    "/api/v1/auth/reset-password": {"token": "abc", "new_password": "Correct-Horse-9-Battery"},
}


def assert_validation_error(response, *fields):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["type"] == "/api/problems/validation-error"
    assert body["request_id"] == response["X-Request-ID"]
    for field in fields:
        assert field in body["errors"], body
    return body


@pytest.mark.parametrize("path", PUBLIC)
def test_missing_fields(api_client, path):
    body = assert_validation_error(api_client.post(path, {}, format="json"), *PUBLIC[path])
    assert all(isinstance(m, str) for msgs in body["errors"].values() for m in msgs)


@pytest.mark.parametrize("path", PUBLIC)
def test_wrong_types(api_client, path):
    wrong = {field: 12345678 for field in PUBLIC[path]}
    assert_validation_error(api_client.post(path, wrong, format="json"), *PUBLIC[path])
    nested = {field: {"$gt": ""} for field in PUBLIC[path]}
    assert_validation_error(api_client.post(path, nested, format="json"), *PUBLIC[path])


@pytest.mark.parametrize("path", PUBLIC)
def test_non_json_body(api_client, path):
    response = api_client.post(path, data="{not json", content_type="application/json")
    body = assert_validation_error(response)
    assert "body" in body["errors"]


@pytest.mark.parametrize("path", PUBLIC)
def test_a_json_list_instead_of_an_object(api_client, path):
    assert_validation_error(api_client.post(path, [1, 2], format="json"))


@pytest.mark.parametrize("path", PUBLIC)
def test_form_encoding_is_unsupported(api_client, path):
    response = api_client.post(path, PUBLIC[path])
    assert response.status_code == 415
    assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("path", [p for p, f in PUBLIC.items() if "email" in f])
def test_a_10_kb_email(api_client, path):
    data = dict(PUBLIC[path], email="a" * 10_000 + "@example.com")
    assert_validation_error(api_client.post(path, data, format="json"), "email")


@pytest.mark.parametrize("path", [p for p, f in PUBLIC.items() if "email" in f])
def test_not_an_email(api_client, path):
    data = dict(PUBLIC[path], email="not-an-email")
    assert_validation_error(api_client.post(path, data, format="json"), "email")


def test_a_129_character_password_at_login(api_client, user):
    response = api_client.post("/api/v1/auth/login", {"email": user.email, "password": "A1!" + "b" * 126},
                               format="json")
    assert_validation_error(response, "password")


def test_a_129_character_password_at_reset(api_client, user, django_capture_on_commit_callbacks):
    from tests.accounts.conftest import outbox_to, token_from

    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/v1/auth/request-password-reset", {"email": user.email}, format="json")
    token = token_from(outbox_to(user.email)[0])
    response = api_client.post("/api/v1/auth/reset-password",
                               {"token": token, "new_password": "A1!" + "b" * 126}, format="json")
    body = assert_validation_error(response, "new_password")
    assert any("at most 128" in m for m in body["errors"]["new_password"])


def test_a_huge_password_is_refused_before_hashing(api_client):
    response = api_client.post("/api/v1/auth/register",
                               {"email": "huge@example.com", "password": "A1!" + "b" * 5000}, format="json")
    assert_validation_error(response, "password")


def test_me_patch_with_wrong_types(auth_client):
    assert_validation_error(auth_client.patch("/api/v1/auth/me", {"first_name": 7}, format="json"), "first_name")
    assert_validation_error(auth_client.patch("/api/v1/auth/me", {"first_name": "x" * 151}, format="json"),
                            "first_name")


def test_methods_not_allowed_are_problems(api_client):
    response = api_client.get("/api/v1/auth/login")
    assert (response.status_code, response.json()["code"]) == (405, "METHOD_NOT_ALLOWED")
