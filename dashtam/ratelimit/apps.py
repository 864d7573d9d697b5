from django.apps import AppConfig


class RateLimitConfig(AppConfig):
    """Rate limits: the rule table's checks and the admin page of limited keys.

    Labelled ``dashtam_ratelimit`` because django-ratelimit's app already takes
    the label ``ratelimit``.
    """

    name = "dashtam.ratelimit"
    label = "dashtam_ratelimit"
    verbose_name = "Rate limits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dashtam.ratelimit import checks  # noqa: F401 - registers the system checks
