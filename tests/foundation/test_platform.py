"""Health, OpenAPI, security headers, HTTPS-only API, logs without secrets."""

import io
import json
import logging

import pytest

from dashtam.logging import JsonFormatter, RequestContextFilter

pytestmark = pytest.mark.django_db


def test_healthz_touches_nothing_and_answers_200(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] in {"ok", "degraded"}
    assert set(body["checks"]) == {"database", "cache", "broker"}
    assert body["checks"]["database"] == "ok"
    assert isinstance(body["circuit_breakers"], dict)


@pytest.mark.slow
def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    spec = schema.json()
    assert spec["openapi"].startswith("3.")
    assert "Problem" in spec["components"]["schemas"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


@pytest.mark.slow
def test_security_headers_on_every_response(client):
    response = client.get("/api/v1/nothing-here")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    admin = client.get("/admin/login/")
    assert "default-src 'self'" in admin["Content-Security-Policy"]


def test_plain_http_api_is_refused_not_redirected_when_https_is_required(client, settings):
    settings.REQUIRE_HTTPS = True
    response = client.get("/api/v1/anything")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    assert "Location" not in response
    assert client.get("/admin/login/").status_code == 301
    assert client.get("/healthz").status_code == 200
    secure = client.get("/api/v1/anything", secure=True)
    assert secure.status_code == 404


def _log_line(record_kwargs, msg="request", args=()):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(msg, *args, extra=record_kwargs)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_logs_never_contain_passwords_tokens_authorization_or_cookies():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl"
    line = _log_line(
        {"password": "hunter2-Secret", "headers": {"Authorization": f"Bearer {jwt}",
                                                  "Cookie": "sessionid=abc123cookie"},
         "refresh_token": "r-token-value"},
        msg="login with password=%s and token %s", args=("hunter2-Secret", jwt),
    )
    record = json.loads(line)
    assert record["level"] == "WARNING"
    for secret in ("hunter2-Secret", jwt, "abc123cookie", "r-token-value"):
        assert secret not in line


def test_request_log_line_carries_request_id_and_no_bearer_token(client, caplog, settings):
    settings.TRUSTED_PROXY_COUNT = 1  # the incoming id is the proxy's
    with caplog.at_level(logging.INFO, logger="dashtam.request"):
        client.get("/api/v1/nothing", HTTP_X_REQUEST_ID="log-1", HTTP_AUTHORIZATION="Bearer abc.def.ghi")
    records = [r for r in caplog.records if r.name == "dashtam.request"]
    assert records and records[-1].request_id == "log-1"
    assert records[-1].status == 404
    formatted = JsonFormatter().format(records[-1])
    assert "abc.def.ghi" not in formatted
    body = json.loads(formatted)
    assert body["request_id"] == "log-1" and body["method"] == "GET"
    assert "duration_ms" in body


def test_a_tampered_pagination_cursor_is_a_400_validation_problem(api_client, user, rf):
    from sessions_mgmt.services import session_start

    issued = session_start(user=user, request=rf.get("/"))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.access}")
    response = api_client.get("/api/v1/accounts", {"cursor": "not-a-cursor"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "cursor" in body["errors"]


@pytest.mark.slow
def test_operations_endpoints_are_in_the_openapi_schema(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert "/healthz" in paths and "/readyz" in paths
    assert "/api/v1/auth/login" in paths and "/api/v1/admin/audit/events" in paths


def test_scrubbing_keeps_properties_of_secrets_and_removes_the_secrets():
    from dashtam.logging import scrub

    scrubbed = scrub({"token_version": 3, "min_token_version": 2, "token_type": "Bearer",
                      "refresh_count": 4, "access_token": "at-value", "refresh": "rt-value",
                      "password": "pw", "code": "oauth-code", "problem_code": "INVALID_TOKEN"})
    assert scrubbed["token_version"] == 3 and scrubbed["min_token_version"] == 2
    assert scrubbed["token_type"] == "Bearer" and scrubbed["refresh_count"] == 4
    assert scrubbed["problem_code"] == "INVALID_TOKEN"
    for key in ("access_token", "refresh", "password", "code"):
        assert scrubbed[key] == "[REDACTED]"


def test_a_secret_named_with_a_unicode_case_lookalike_is_still_redacted():
    from dashtam.logging import scrub_text

    # The redaction patterns match case-insensitively, so "ſ" counts as "s" and "ı" as "i".
    assert scrub_text("paſſword=hunter2") == "paſſword=[REDACTED]"
    assert scrub_text("acceſs: abc123") == "acceſs: [REDACTED]"
    assert scrub_text("code=abc&ſtate=xyz") == "code=[REDACTED]&ſtate=[REDACTED]"
    assert scrub_text("plain path /api/v1/auth/me") == "plain path /api/v1/auth/me"
