from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from dashtam.health import register_readiness_detail
        from providers import checks  # noqa: F401 - registers the system checks
        from providers.selectors import circuit_breaker_states

        # /readyz shows each provider's circuit breaker (never changing its status).
        register_readiness_detail("circuit_breakers", circuit_breaker_states)
