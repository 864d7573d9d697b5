from django.apps import AppConfig


class SessionsMgmtConfig(AppConfig):
    name = "sessions_mgmt"
    verbose_name = "Sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from sessions_mgmt import checks, revocation, schema  # noqa: F401 - registers checks and the OpenAPI scheme

        def forget_cached_user(sender, instance, **kwargs):
            # The authentication class caches user rows; a saved user is re-read.
            revocation.user_changed(user_id=instance.pk)

        user_model = get_user_model()
        post_save.connect(forget_cached_user, sender=user_model, dispatch_uid="sessions_forget_user_save", weak=False)
        post_delete.connect(forget_cached_user, sender=user_model, dispatch_uid="sessions_forget_user_delete", weak=False)
