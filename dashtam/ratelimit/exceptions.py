from dashtam.api.exceptions import RetryAfterError


class RateLimited(RetryAfterError):
    def __init__(self, retry_after: float = 60, detail: str | None = None, headers: dict | None = None):
        super().__init__("RATE_LIMITED", detail or "Too many requests.", retry_after=retry_after,
                         headers=headers)
