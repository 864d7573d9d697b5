"""What a provider call can go wrong with. Messages never carry a token or a secret."""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed. ``code`` is stable and goes into last_error_code and audit."""

    code = "provider_error"
    transient = True

    def __init__(self, message: str = "", *, code: str | None = None, status: int | None = None):
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        if code:
            self.code = code
        self.status = status


class ProviderUnavailable(ProviderError):
    """The circuit is open or the outbound budget is spent: do not call, try after ``retry_after``."""

    code = "provider_unavailable"

    def __init__(self, message: str = "", *, retry_after: float, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class InvalidGrant(ProviderError):
    """The provider refused the grant (code or refresh token): the user must reconnect."""

    code = "invalid_grant"
    transient = False


class ProviderRequestRejected(ProviderError):
    """A 4xx other than invalid_grant: retrying the same request will not help."""

    code = "provider_rejected"
    transient = False
