from django.apps import AppConfig


class PasskeysConfig(AppConfig):
    """Passkeys (WebAuthn): a part of accounts with its own tables and migrations."""

    name = "accounts.passkeys"
    label = "passkeys"
    verbose_name = "Passkeys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.passkeys import checks  # noqa: F401  (registers the system checks)
