from django.apps import AppConfig


class DashtamConfig(AppConfig):
    name = "dashtam"
    verbose_name = "Dashtam"

    def ready(self):
        from dashtam import checks  # noqa: F401 - registers the configuration checks
