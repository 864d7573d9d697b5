"""Reads for the providers app."""


def circuit_breaker_states() -> dict:
    """State of each provider's circuit breaker, for /readyz and the admin."""
    return {}
