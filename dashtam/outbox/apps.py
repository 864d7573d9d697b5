from django.apps import AppConfig


class OutboxConfig(AppConfig):
    """The task outbox: background work that could not reach the broker waits here.

    Labelled ``dashtam_outbox`` (app labels must be unique; ``outbox`` is a common name).
    """

    name = "dashtam.outbox"
    label = "dashtam_outbox"
    verbose_name = "Task outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dashtam.outbox import checks  # noqa: F401 - registers the system checks
