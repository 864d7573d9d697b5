"""Domain errors: what services raise when they refuse.

Services know nothing of HTTP frameworks. They raise these, carrying a problem code from
``dashtam.api.problems.CATALOGUE``; one handler (``dashtam.api.exceptions.classify``) turns
them into problem+json for the API, and the admin and management commands show their
``detail``.

    raise DomainError("TOKEN_REUSED", "This refresh token was already used.")
    raise RetryLater("ACCOUNT_LOCKED", "Too many failed attempts.", retry_after=900)
    raise InvalidInput({"password": ["This password is too common."]})
"""

from __future__ import annotations

import math
from typing import Any


class DomainError(Exception):
    """A service refused. ``code`` is a problem code; ``status`` defaults to the catalogue's."""

    def __init__(self, code: str, detail: str | None = None, *, status: int | None = None,
                 headers: dict[str, str] | None = None, extra: dict | None = None) -> None:
        from dashtam.api.problems import CATALOGUE

        default_status, title = CATALOGUE.get(code, (400, code))
        self.problem_code = code
        self.status_code = status or default_status
        self.detail = detail or f"{title}."
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)

    def __str__(self) -> str:
        return self.detail


class RetryLater(DomainError):
    """A refusal that ends by itself: adds ``Retry-After`` (seconds, rounded up, at least 1)."""

    def __init__(self, code: str, detail: str | None = None, *, retry_after: float,
                 **kwargs: Any) -> None:
        seconds = max(1, math.ceil(retry_after))
        headers = dict(kwargs.pop("headers", None) or {}, **{"Retry-After": str(seconds)})
        super().__init__(code, detail, headers=headers, **kwargs)
        self.retry_after = seconds


class InvalidInput(DomainError):
    """Input a service refuses field by field: ``{field: [messages]}`` (VALIDATION_ERROR, 400)."""

    def __init__(self, errors: dict[str, list[str]] | list[str] | str,
                 detail: str = "The request has invalid fields.") -> None:
        if isinstance(errors, str):
            errors = [errors]
        if isinstance(errors, list):
            errors = {"non_field_errors": [str(e) for e in errors]}
        self.errors = {key: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
                       for key, msgs in errors.items()}
        super().__init__("VALIDATION_ERROR", detail, status=400)
