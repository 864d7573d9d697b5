"""Every 4xx/5xx under /api/ is RFC 9457 problem+json carrying the request id."""

import json
import logging
import uuid

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.foundation.urls")]

PROBLEM = "application/problem+json"
FIELDS = {"type", "title", "status", "detail", "instance", "code", "request_id"}


def problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    body = json.loads(response.content)
    assert FIELDS <= set(body), body
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == "/api/problems/" + code.lower().replace("_", "-")
    assert body["request_id"] == response["X-Request-ID"]
    return body


def test_unknown_route_is_a_404_problem_with_the_proxys_request_id(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    response = client.get("/api/v1/does-not-exist", HTTP_X_REQUEST_ID="abc-123")
    body = problem(response, 404, "NOT_FOUND")
    assert response["X-Request-ID"] == "abc-123"
    assert body["request_id"] == "abc-123"
    assert body["instance"] == "/api/v1/does-not-exist"
    assert "errors" not in body


@pytest.mark.parametrize("bad", ["has spaces", "x" * 129, "semi;colon", "<script>"])
def test_an_insane_request_id_is_replaced_by_a_uuid(client, bad):
    response = client.get("/api/v1/does-not-exist", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    uuid.UUID(response["X-Request-ID"])


def test_every_response_carries_a_request_id(client):
    assert uuid.UUID(client.get("/healthz")["X-Request-ID"])


def test_wrong_method_is_a_405_problem(client):
    response = client.delete("/api/v1/test/echo")
    problem(response, 405, "METHOD_NOT_ALLOWED")


def test_malformed_json_is_a_validation_problem(client):
    response = client.post("/api/v1/test/echo", data="{not json", content_type="application/json")
    body = problem(response, 400, "VALIDATION_ERROR")
    assert "body" in body["errors"]


def test_invalid_fields_are_listed_per_field(client):
    response = client.post("/api/v1/test/echo", data={"email": "nope", "count": "x"},
                           content_type="application/json")
    body = problem(response, 400, "VALIDATION_ERROR")
    assert set(body["errors"]) == {"email", "count"}
    assert all(isinstance(m, list) and m for m in body["errors"].values())


def test_missing_fields_are_listed(client):
    body = problem(client.post("/api/v1/test/echo", data={}, content_type="application/json"),
                   400, "VALIDATION_ERROR")
    assert set(body["errors"]) == {"email", "count"}


def test_wrong_content_type_is_a_415_problem(client):
    response = client.post("/api/v1/test/echo", data="email=a@b.c", content_type="text/plain")
    problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_body_over_the_limit_is_a_413_problem(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    payload = json.dumps({"email": "a@example.com", "count": 1, "pad": "x" * 4096})
    response = client.post("/api/v1/test/echo", data=payload, content_type="application/json")
    problem(response, 413, "PAYLOAD_TOO_LARGE")


def test_unhandled_exception_is_a_500_without_internals_and_is_logged(client, caplog, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client.raise_request_exception = False
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/test/crash", HTTP_X_REQUEST_ID="crash-1")
    body = problem(response, 500, "INTERNAL_ERROR")
    text = response.content.decode()
    assert "Traceback" not in text and "hunter2" not in text and "secret internals" not in text
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "crash-1"]
    assert any(r.levelno == logging.ERROR for r in records)
    assert body["request_id"] == "crash-1"


def test_a_crash_outside_drf_is_still_a_500_problem(client):
    client.raise_request_exception = False
    response = client.get("/api/v1/test/plain-crash")
    body = problem(response, 500, "INTERNAL_ERROR")
    assert "ValueError" not in json.dumps(body)


def test_a_dead_database_is_a_503_problem(client):
    response = client.get("/api/v1/test/dead-db")
    body = problem(response, 503, "SERVICE_UNAVAILABLE")
    assert "Connection refused" not in json.dumps(body)


def test_admin_keeps_djangos_html_pages(client):
    response = client.get("/not-an-api-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
