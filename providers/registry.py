"""The provider types Dashtam knows, and how to build a client for each."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from providers.clients.base import BaseClient
from providers.clients.sandbox import SandboxClient
from providers.clients.schwab import SchwabClient


@dataclass(frozen=True)
class ProviderType:
    key: str
    name: str
    client_class: type[BaseClient]
    capabilities: tuple[str, ...] = ("accounts", "positions", "transactions")

    @property
    def configured(self) -> bool:
        if self.key == "schwab":
            return bool(settings.SCHWAB_CLIENT_ID and settings.SCHWAB_CLIENT_SECRET
                        and settings.SCHWAB_REDIRECT_URI)
        return True

    def client(self) -> BaseClient:
        return self.client_class.from_settings()


_TYPES = {
    "schwab": ProviderType("schwab", "Charles Schwab", SchwabClient),
    "sandbox": ProviderType("sandbox", "Sandbox (demo data)", SandboxClient),
}


def provider_types() -> list[ProviderType]:
    """Every provider type offered here: the sandbox only when SANDBOX_PROVIDER_ENABLED."""
    return [t for key, t in _TYPES.items() if key != "sandbox" or settings.SANDBOX_PROVIDER_ENABLED]


def provider_type(key: str) -> ProviderType | None:
    return next((t for t in provider_types() if t.key == key), None)


def all_provider_keys() -> list[str]:
    return list(_TYPES)
