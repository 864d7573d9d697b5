"""OpenAPI: every operation documents its problem+json error responses."""

from __future__ import annotations

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "instance", "code", "request_id"],
    "properties": {
        "type": {"type": "string", "example": "/api/problems/validation-error"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string", "example": "VALIDATION_ERROR"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Only on VALIDATION_ERROR: messages per field.",
        },
    },
}

COMMON = {
    "400": "Validation error (VALIDATION_ERROR).",
    "429": "Too many requests (RATE_LIMITED, or ACCOUNT_LOCKED on login); see Retry-After.",
    "500": "Internal error (INTERNAL_ERROR); quote request_id.",
    "503": "Service unavailable (SERVICE_UNAVAILABLE).",
}
AUTHENTICATED = {
    "401": "Not authenticated, token invalid, or session revoked "
    "(NOT_AUTHENTICATED, TOKEN_INVALID, SESSION_REVOKED).",
}
RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests allowed in the window."},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Requests left in the window."},
    "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Seconds until the window resets."},
}


def add_problem_responses(result, generator, request, public):
    """drf-spectacular post-processing hook."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for _method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            wanted = dict(COMMON)
            if operation.get("security") and any(operation["security"]):
                wanted.update(AUTHENTICATED)
            for status, description in wanted.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/problem+json": {"schema": ref}}},
                )
            for status, response in responses.items():
                if status[:1] in {"4", "5"}:
                    # An error an endpoint declares itself (say a 403 with its own
                    # description) still has the problem+json body.
                    content = response.setdefault("content", {})
                    content.pop("application/json", None)
                    content.setdefault("application/problem+json", {"schema": ref})
                if status.startswith("2"):
                    response.setdefault("headers", {}).update(RATE_HEADERS)
                if status == "429":
                    headers = response.setdefault("headers", {})
                    headers["Retry-After"] = {
                        "schema": {"type": "integer"},
                        "description": "Seconds until a retry can succeed: the real time left "
                        "in the rate-limit window (RATE_LIMITED) or in the lockout (ACCOUNT_LOCKED).",
                    }
                    headers.update(RATE_HEADERS)
    return result
