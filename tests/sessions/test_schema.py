"""Every sessions endpoint is in the OpenAPI document, with the bearer scheme where it needs one."""

from __future__ import annotations

import pytest


@pytest.fixture
def schema():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def test_sessions_endpoints_are_documented(schema):
    paths = schema["paths"]
    expected = {
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/sessions", "get"),
        ("/api/v1/auth/sessions/{session_id}", "delete"),
        ("/api/v1/auth/sessions/others", "delete"),
        ("/api/v1/auth/sessions/all", "delete"),
    }
    for path, method in expected:
        assert method in paths[path], (path, method)
    assert paths["/api/v1/auth/sessions"]["get"]["security"] == [{"jwtAuth": []}]
    assert "jwtAuth" in schema["components"]["securitySchemes"]
    refresh = paths["/api/v1/auth/refresh"]["post"]
    assert set(refresh["responses"]["200"]["content"]["application/json"]["schema"].keys()) == {"$ref"}
