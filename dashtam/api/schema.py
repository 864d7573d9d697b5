r"""OpenAPI: every operation documents every answer it can give.

One mechanism, so that new endpoints are covered without per-view work:

- ``AutoSchema`` (DRF's DEFAULT_SCHEMA_CLASS) adds to each operation under /api/ the
  error statuses it can return, from what the view is:
    400 VALIDATION_ERROR       every operation (parameters, bodies, malformed requests)
    401 NOT_AUTHENTICATED ...  operations that need a bearer token
    403 PERMISSION_DENIED      operations with a permission beyond "signed in" (staff)
    404 NOT_FOUND              operations with a path parameter ({id} routes)
    413, 415                   operations that take a request body
    429 RATE_LIMITED           every operation, with Retry-After
    500 INTERNAL_ERROR, 503 SERVICE_UNAVAILABLE   every operation
  Optional query parameters are ``allowEmptyValue``: DRF reads ``?type=`` as absent.
  A view adds what only it knows in its own ``extend_schema``: a response whose
  description names the codes (``409: OpenApiResponse(description="REAUTH_REQUIRED ...")``),
  or an operation description that says "401 TOKEN_REUSED". Every code of the catalogue
  (``dashtam/api/problems.py``) named there is listed for that status.
- Each 4xx/5xx is ``application/problem+json`` with the ``Problem`` schema, a description
  that lists its codes, and one example per code. 429 documents ``Retry-After`` (always
  sent); 503 documents it too (sent with PROVIDER_UNAVAILABLE and database outages).
  Every response under /api/ documents ``X-Request-ID``; successes document the
  X-RateLimit-* headers.
- Request schemas state the real constraints: a trimmed text field that refuses blanks
  has the pattern ``\S``; an IP address field is ipv4 or ipv6; a serializer field with an
  ``openapi_schema()`` method (a new password: the policy's lengths and character classes;
  a date-or-date-time filter) has that merged into its schema last.
- A DELETE whose view declares a request body (``DELETE auth/me {password}``) documents
  that body; drf-spectacular leaves DELETE bodies out by default.

``add_problem_responses`` (a post-processing hook) registers the ``Problem`` component
and gives operations outside /api/ (/healthz, /readyz) the rate-limit documentation.
"""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated

from dashtam.api.problems import CATALOGUE, DEFAULT_DETAILS, problem_type

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# A filter that takes a day or a moment (``openapi_schema`` of such fields).
DATE_OR_DATE_TIME = {"anyOf": [{"format": "date"}, {"format": "date-time"}],
                     "description": "An ISO 8601 date (YYYY-MM-DD) or date-time."}
API_PREFIX = "/api/"


def problem_schema() -> dict:
    return {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail", "instance", "code", "request_id"],
        "properties": {
            "type": {"type": "string", "example": "/api/problems/validation-error"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "code": {"type": "string", "enum": sorted(CATALOGUE), "example": "VALIDATION_ERROR"},
            "request_id": {"type": "string"},
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "description": "Only on VALIDATION_ERROR: messages per field.",
            },
        },
    }


# The kept name: older imports read the schema as a constant.
PROBLEM_SCHEMA = problem_schema()

# What each status means, and the codes any operation answering it may use.
STATUS_TEXT = {
    400: ("Bad request", ["VALIDATION_ERROR"]),
    401: ("Not authenticated, token invalid, or session ended",
          ["NOT_AUTHENTICATED", "TOKEN_INVALID", "SESSION_REVOKED"]),
    403: ("Forbidden", ["PERMISSION_DENIED"]),
    404: ("Not found (or not yours)", ["NOT_FOUND"]),
    409: ("Conflict", ["CONFLICT"]),
    413: ("Request body too large (DATA_UPLOAD_MAX_MEMORY_SIZE)", ["PAYLOAD_TOO_LARGE"]),
    415: ("Request body is not application/json", ["UNSUPPORTED_MEDIA_TYPE"]),
    429: ("Too many requests; retry after Retry-After seconds", ["RATE_LIMITED"]),
    500: ("Internal error; quote request_id", ["INTERNAL_ERROR"]),
    502: ("The provider failed", ["PROVIDER_ERROR"]),
    503: ("Service unavailable; retry later", ["SERVICE_UNAVAILABLE"]),
}
# Statuses whose default codes stand beside the codes a view names (any operation can be
# rate limited, fail, or find the database down, whatever else it declares).
ALWAYS_POSSIBLE = {400, 429, 500, 503}

RETRY_AFTER = {
    "schema": {"type": "integer", "minimum": 1},
    "description": "Seconds until a retry can succeed: the real time left in the rate-limit "
    "window (RATE_LIMITED), in the lockout (ACCOUNT_LOCKED) or before the provider's circuit "
    "closes (PROVIDER_UNAVAILABLE).",
}
REQUEST_ID = {
    "schema": {"type": "string"},
    "description": "This request's id: in the error body, the logs and every audit row it wrote.",
}
RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests allowed in the window."},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Requests left in the window."},
    "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Seconds until the window resets."},
}
_CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b[A-Z]{4,}\b")
_STATUS_CODE = re.compile(r"\b([45]\d\d)\s+([A-Z][A-Z0-9_]+)\b")


def codes_named(text: str, status: int) -> list[str]:
    """Catalogue codes of this status that ``text`` names, in order of appearance."""
    found = []
    for word in _CODE.findall(text or ""):
        if CATALOGUE.get(word, (None,))[0] == status and word not in found:
            found.append(word)
    return found


def problem_example(code: str, path: str) -> dict:
    status, title = CATALOGUE[code]
    value = {
        "type": problem_type(code), "title": title, "status": status,
        "detail": DEFAULT_DETAILS.get(code, title + "."), "instance": path.replace("{", "").replace("}", ""),
        "code": code, "request_id": "0b6f6a0e-8a6e-4d44-9a1c-6a8f0c6e2f10",
    }
    if code == "VALIDATION_ERROR":
        value["detail"] = "The request has invalid fields."
        value["errors"] = {"field": ["This field is required."]}
    return {"summary": title, "value": value}


def problem_response(*, status: int, codes: list[str], path: str, description: str = "") -> dict:
    text, _defaults = STATUS_TEXT.get(status, ("Error", []))
    listed = ", ".join(codes) or "see detail"
    description = description.strip() or f"{text}."
    if codes and not all(code in description for code in codes):
        description = f"{description} Codes: {listed}."
    return {
        "description": description,
        "content": {"application/problem+json": {
            "schema": dict(PROBLEM_REF),
            "examples": {code: problem_example(code, path) for code in codes},
        }},
    }


def _refuses_blank_after_trim(field, schema: dict) -> bool:
    return (
        isinstance(field, serializers.CharField) and not field.read_only
        and field.trim_whitespace and not field.allow_blank
        and schema.get("type") == "string" and not {"pattern", "format", "enum"} & set(schema)
        and not any(isinstance(v, RegexValidator) for v in field.validators)
    )


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, plus every error answer the view can give (see module doc)."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if not isinstance(schema, dict) or "$ref" in schema:
            return schema
        if direction == "request" and _refuses_blank_after_trim(field, schema):
            # Trimmed, then refused when blank: a value of spaces only is refused too.
            schema = {**schema, "pattern": r"\S"}
        if isinstance(field, serializers.IPAddressField) and field.protocol == "both":
            schema = {**schema, "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
        # A field that knows more about its values than its validators say (a password
        # policy, a date or a date-time) states it in openapi_schema(); that has the last word.
        if hasattr(field, "openapi_schema"):
            override = field.openapi_schema()
            schema = {**schema, **override}
            if "anyOf" in override and "format" not in override:
                schema.pop("format", None)  # the alternatives say which formats
        return schema

    def get_request_serializer(self):
        # A DELETE has a body only when its view declares one (extend_schema(request=...),
        # which overrides this method); never guess one from the view.
        if self.method == "DELETE":
            return None
        return super().get_request_serializer()

    def _get_request_body(self, direction="request"):
        # drf-spectacular documents bodies only for POST, PUT and PATCH. A DELETE that
        # declares one reads it, so the schema says so.
        if self.method == "DELETE" and self.get_request_serializer() is not None:
            self.method = "POST"
            try:
                return super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        return super()._get_request_body(direction)

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None or not path.startswith(API_PREFIX):
            return operation
        for parameter in operation.get("parameters", []):
            # DRF reads an empty optional query parameter (?type=) as absent, whatever the
            # field: the schema must not claim it is refused.
            if parameter["in"] == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
                if parameter.get("schema", {}).get("minLength") == 1:
                    del parameter["schema"]["minLength"]
        self._document_errors(operation, path)
        return operation

    # --- which statuses ----------------------------------------------------------------
    def _needs_authentication(self) -> bool:
        if not getattr(self.view, "authentication_classes", None):
            return False
        return any(not isinstance(p, AllowAny) for p in self.view.get_permissions())

    def _restricted(self) -> bool:
        return any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in self.view.get_permissions())

    def _automatic_statuses(self, operation: dict, path: str) -> set[int]:
        statuses = {400, 429, 500, 503}
        if self._needs_authentication():
            statuses.add(401)
            if self._restricted():
                statuses.add(403)
        if "{" in path:
            statuses.add(404)
        if "requestBody" in operation:
            statuses |= {413, 415}
        return statuses

    def _document_errors(self, operation: dict, path: str) -> None:
        responses = operation["responses"]
        automatic = self._automatic_statuses(operation, path)
        # "401 TOKEN_REUSED" in the operation's description declares that answer.
        mentioned: dict[int, list[str]] = {}
        for status, code in _STATUS_CODE.findall(operation.get("description", "")):
            if CATALOGUE.get(code, (None,))[0] == int(status):
                mentioned.setdefault(int(status), []).append(code)
        statuses = automatic | set(mentioned) | {int(s) for s in responses if s[:1] in "45"}
        for status in sorted(statuses):
            declared = responses.get(str(status), {})
            description = declared.get("description", "")
            codes = codes_named(description, status)
            codes += [c for c in mentioned.get(status, []) if c not in codes]
            defaults = STATUS_TEXT.get(status, ("", []))[1]
            if not codes or (status in automatic and (status in ALWAYS_POSSIBLE or status == 401)):
                codes += [c for c in defaults if c not in codes]
            response = problem_response(status=status, codes=codes, path=path, description=description)
            headers = dict(declared.get("headers", {}))
            if status in (429, 503):
                headers["Retry-After"] = dict(RETRY_AFTER, required=status == 429)
            if status == 429:
                headers.update(RATE_HEADERS)
            response["headers"] = headers
            responses[str(status)] = response
        for status, response in responses.items():
            headers = response.setdefault("headers", {})
            if status.startswith("2"):
                headers.update(RATE_HEADERS)
            headers["X-Request-ID"] = dict(REQUEST_ID, required=True)
        operation["responses"] = dict(sorted(responses.items()))


def add_problem_responses(result, generator, request, public):
    """drf-spectacular post-processing hook: the Problem component; operations outside /api/
    (/healthz, /readyz: plain JSON, not problem+json) keep their own answers and get the
    rate-limit headers and 429 that every operation documents."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = problem_schema()
    for path, path_item in result.get("paths", {}).items():
        if path.startswith(API_PREFIX):
            continue
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, response in responses.items():
                if status.startswith("2"):
                    response.setdefault("headers", {}).update(RATE_HEADERS)
            responses.setdefault("429", {
                "description": STATUS_TEXT[429][0] + ". Codes: RATE_LIMITED.",
                "content": {"application/problem+json": {"schema": dict(PROBLEM_REF)}},
                "headers": {"Retry-After": dict(RETRY_AFTER, required=True), **RATE_HEADERS},
            })
    return result
