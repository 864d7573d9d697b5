"""The OpenAPI schema documents the honest 429 and the rate-limit headers."""


def test_every_operation_documents_rate_limit_headers_and_the_429(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    ]
    assert operations
    for path, method, op in operations:
        responses = op["responses"]
        assert "429" in responses, (path, method)
        too_many = responses["429"]
        assert "RATE_LIMITED" in too_many["description"]
        assert too_many["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
            too_many["headers"]
        ), (path, method)
        for status, response in responses.items():
            if status.startswith("2"):
                assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
                    response.get("headers", {})
                ), (path, method, status)
