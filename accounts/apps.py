from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import backends, checks  # noqa: F401
        from accounts.mfa.services import totp_devices_reencrypt
        from dashtam.crypto import register_resealer

        register_resealer("TOTP seed", totp_devices_reencrypt)
