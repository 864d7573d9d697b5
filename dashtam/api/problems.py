"""RFC 9457 problem details: one shape for every error under /api/."""

from __future__ import annotations

import json

from django.http import HttpResponse

from dashtam import context

PROBLEM_CONTENT_TYPE = "application/problem+json"

# code -> (status, title). The catalogue is the contract's; keep it in one place.
CATALOGUE: dict[str, tuple[int, str]] = {
    "VALIDATION_ERROR": (400, "Validation error"),
    "BAD_REQUEST": (400, "Bad request"),
    "CANNOT_REVOKE_CURRENT_SESSION": (400, "Cannot revoke the current session"),
    "INVALID_TOKEN": (400, "Invalid or expired token"),
    "INVALID_CREDENTIALS": (401, "Invalid credentials"),
    "NOT_AUTHENTICATED": (401, "Not authenticated"),
    "TOKEN_INVALID": (401, "Token invalid"),
    "TOKEN_REUSED": (401, "Token reused"),
    "INVALID_MFA_CODE": (401, "Invalid second-factor code"),
    "SESSION_REVOKED": (401, "Session revoked"),
    "EMAIL_NOT_VERIFIED": (403, "Email not verified"),
    "PERMISSION_DENIED": (403, "Permission denied"),
    "NOT_FOUND": (404, "Not found"),
    "METHOD_NOT_ALLOWED": (405, "Method not allowed"),
    "NOT_ACCEPTABLE": (406, "Not acceptable"),
    "CONFLICT": (409, "Conflict"),
    "REAUTH_REQUIRED": (409, "Re-authorization required"),
    "PAYLOAD_TOO_LARGE": (413, "Payload too large"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported media type"),
    "ACCOUNT_LOCKED": (429, "Account locked"),
    "RATE_LIMITED": (429, "Too many requests"),
    "INTERNAL_ERROR": (500, "Internal error"),
    "PROVIDER_ERROR": (502, "Provider error"),
    "SERVICE_UNAVAILABLE": (503, "Service unavailable"),
    "PROVIDER_UNAVAILABLE": (503, "Provider unavailable"),
}

# Fallback code for a bare status (Django's own 404/405/413/500 pages, etc.).
STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "NOT_AUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "PROVIDER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

DEFAULT_DETAILS = {
    "NOT_FOUND": "The requested resource was not found.",
    "METHOD_NOT_ALLOWED": "This method is not allowed on this resource.",
    "INTERNAL_ERROR": "An unexpected error occurred. Quote the request_id when reporting it.",
    "SERVICE_UNAVAILABLE": "The service is temporarily unavailable. Try again shortly.",
    "PAYLOAD_TOO_LARGE": "The request body is too large.",
    "NOT_AUTHENTICATED": "Authentication credentials were not provided.",
    "PERMISSION_DENIED": "You do not have permission to perform this action.",
    "BAD_REQUEST": "The request could not be understood.",
}


def problem_type(code: str) -> str:
    return "/api/problems/" + code.lower().replace("_", "-")


def problem_body(
    *, code: str, status: int | None = None, detail: str | None = None, instance: str = "",
    errors: dict | None = None, title: str | None = None, extra: dict | None = None,
) -> dict:
    cat_status, cat_title = CATALOGUE.get(code, (status or 500, code.replace("_", " ").capitalize()))
    body = {
        "type": problem_type(code),
        "title": title or cat_title,
        "status": status or cat_status,
        "detail": detail or DEFAULT_DETAILS.get(code, cat_title + "."),
        "instance": instance,
        "code": code,
        "request_id": context.current_request_id(),
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        for key, value in extra.items():
            body.setdefault(key, value)
    return body


def problem_response(
    request, *, code: str, status: int | None = None, detail: str | None = None,
    errors: dict | None = None, headers: dict | None = None,
) -> HttpResponse:
    """A plain Django problem+json response, for code that runs outside DRF."""
    body = problem_body(code=code, status=status, detail=detail, instance=request.path, errors=errors)
    response = HttpResponse(
        json.dumps(body), status=body["status"], content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response
