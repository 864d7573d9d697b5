"""The sandbox provider: Schwab's protocol, served by this app under /sandbox/.

Lets a newcomer connect an account and see data without Schwab credentials. It
also supports PKCE S256, so that path of the OAuth flow runs for real.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from providers.clients.schwab import SchwabClient

SANDBOX_CLIENT_ID = "dashtam-sandbox"
SANDBOX_CLIENT_SECRET = "dashtam-sandbox-secret"  # public by design: the sandbox holds no real data


class SandboxClient(SchwabClient):
    key = "sandbox"
    supports_pkce = True
    refresh_token_lifetime = timedelta(days=7)

    @classmethod
    def from_settings(cls) -> SandboxClient:
        return cls(
            base_url=settings.SANDBOX_API_BASE_URL,
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            redirect_uri=settings.SANDBOX_REDIRECT_URI,
            rate_limit=settings.SANDBOX_RATE_LIMIT,
        )
