from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from dashtam.health import register_readiness_detail
        from dashtam.observability.collectors import register_state_reader
        from providers import checks  # noqa: F401 - registers the system checks
        from providers.selectors import circuit_breaker_states, token_refresh_lag_seconds

        # /readyz shows each provider's circuit breaker (never changing its status), and the
        # metrics scrape reads the breakers and the refresh lag: the hub imports no app.
        register_readiness_detail("circuit_breakers", circuit_breaker_states)
        register_state_reader("circuit_breakers", circuit_breaker_states)
        register_state_reader("token_refresh_lag_seconds", token_refresh_lag_seconds)
