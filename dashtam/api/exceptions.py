"""Exceptions every app raises, and the DRF handler that turns all of them into problem+json."""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from dashtam.api.problems import PROBLEM_CONTENT_TYPE, problem_body
from dashtam.errors import DomainError, InvalidInput, RetryLater

logger = logging.getLogger("dashtam.api")


class ProblemError(DomainError, drf.APIException):
    """A domain error that is also a DRF ``APIException``: for views and authentication classes,
    where DRF itself must see an ``APIException``. Services raise ``dashtam.errors`` instead.

    ``ProblemError("TOKEN_REUSED", "This refresh token was already used.")``
    """


class RetryAfterError(RetryLater, ProblemError):
    """``RetryLater`` for views: a problem with a Retry-After header."""


def _flatten_errors(detail) -> dict:
    """DRF's nested ValidationError detail as {field: [messages]}."""
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub, msgs in _flatten_errors(value).items():
                    out[f"{key}.{sub}"] = msgs
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for i, item in enumerate(value):
                    for sub, msgs in _flatten_errors(item).items():
                        out[f"{key}.{i}.{sub}"] = msgs
            else:
                out[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(v) for v in detail]}
    return {"non_field_errors": [str(detail)]}


def classify(exc, request=None) -> tuple[str, int, str | None, dict | None, dict, dict]:
    """(code, status, detail, errors, headers, extra) for any exception."""
    headers: dict = {}
    if isinstance(exc, InvalidInput):
        return ("VALIDATION_ERROR", 400, exc.detail, exc.errors, exc.headers, exc.extra)
    if isinstance(exc, DomainError):
        return (exc.problem_code, exc.status_code, str(exc.detail), None, exc.headers, exc.extra)
    if isinstance(exc, drf.ValidationError):
        return ("VALIDATION_ERROR", 400, "The request has invalid fields.",
                _flatten_errors(exc.detail), headers, {})
    if isinstance(exc, drf.ParseError):
        return ("VALIDATION_ERROR", 400, "The request body is not valid JSON.",
                {"body": [str(exc.detail)]}, headers, {})
    if isinstance(exc, RequestDataTooBig):
        return ("PAYLOAD_TOO_LARGE", 413, None, None, headers, {})
    if isinstance(exc, (InvalidToken, TokenError)):
        return ("TOKEN_INVALID", 401, "The token is invalid or expired.", None,
                {"WWW-Authenticate": 'Bearer realm="api"'}, {})
    if isinstance(exc, drf.NotAuthenticated):
        return ("NOT_AUTHENTICATED", 401, None, None, {"WWW-Authenticate": 'Bearer realm="api"'}, {})
    if isinstance(exc, drf.AuthenticationFailed):
        return ("TOKEN_INVALID", 401, str(exc.detail), None,
                {"WWW-Authenticate": 'Bearer realm="api"'}, {})
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        return ("PERMISSION_DENIED", 403, None, None, headers, {})
    if isinstance(exc, (drf.NotFound, Http404)):
        return ("NOT_FOUND", 404, None, None, headers, {})
    if isinstance(exc, drf.MethodNotAllowed):
        return ("METHOD_NOT_ALLOWED", 405, str(exc.detail), None, headers, {})
    if isinstance(exc, drf.NotAcceptable):
        return ("NOT_ACCEPTABLE", 406, str(exc.detail), None, headers, {})
    if isinstance(exc, drf.UnsupportedMediaType):
        return ("UNSUPPORTED_MEDIA_TYPE", 415, str(exc.detail), None, headers, {})
    if isinstance(exc, drf.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        return ("RATE_LIMITED", 429, "Too many requests.", None, {"Retry-After": str(wait)}, {})
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable: %s", type(exc).__name__)
        return ("SERVICE_UNAVAILABLE", 503, None, None, {"Retry-After": "5"}, {})
    if isinstance(exc, drf.APIException):
        status = exc.status_code
        from dashtam.api.problems import STATUS_CODES

        return (STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"),
                status, str(exc.detail), None, headers, {})
    if isinstance(exc, DatabaseError):
        logger.exception("database error")
        return ("INTERNAL_ERROR", 500, None, None, headers, {})
    logger.exception("unhandled exception", exc_info=exc)
    return ("INTERNAL_ERROR", 500, None, None, headers, {})


def problem_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every exception becomes problem+json, none is re-raised."""
    request = context.get("request")
    code, status, detail, errors, headers, extra = classify(exc, request)
    body = problem_body(
        code=code, status=status, detail=detail,
        instance=request.path if request is not None else "", errors=errors, extra=extra,
    )
    response = Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    # An error never leaves half a write behind in an atomic view.
    from rest_framework.views import set_rollback

    set_rollback()
    return response
