from django.apps import AppConfig


class DashtamConfig(AppConfig):
    name = "dashtam"
    verbose_name = "Dashtam"

    def ready(self):
        from dashtam import (
            checks,  # noqa: F401 - registers the configuration checks
            context_celery,
        )
        from dashtam.observability import checks as _observability_checks  # noqa: F401
        from dashtam.observability import metrics, tracing

        metrics.connect_signals()
        tracing.configure_from_settings()
        context_celery.connect()
